-- Argo CD health of an EcrRepository (ecr.berth.dev). See docs/gitops.md.
-- Shared by every berth kind (kept identical by tests/gitops_health.rs): Ready, Stalled,
-- Reconciling and observedGeneration, as berth writes them for kstatus and Flux.
local function condition(status, kind)
  if status == nil or status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function described(c)
  if c.message ~= nil and c.message ~= "" then
    return c.reason .. ": " .. c.message
  end
  return c.reason
end

local status = obj.status
local ready = condition(status, "Ready")
if ready == nil then
  return {status = "Progressing", message = "waiting for berth to reconcile"}
end
local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration ~= generation
    or (ready.observedGeneration ~= nil and ready.observedGeneration ~= generation)) then
  return {status = "Progressing", message = "berth has not reconciled generation " .. generation .. " yet"}
end
local stalled = condition(status, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  return {status = "Degraded", message = described(stalled)}
end
if obj.metadata.deletionTimestamp ~= nil then
  return {status = "Progressing", message = "berth is cleaning up before deletion"}
end
if ready.status ~= "True" then
  return {status = "Progressing", message = described(ready)}
end
local hs = {status = "Healthy", message = ready.message}
-- End of the shared part.

-- Findings of the newest image are about what was pushed, not about the declared repository:
-- a sync cannot fix them, so they leave it Healthy and show in the message.
local compliant = condition(status, "ScanCompliant")
if compliant ~= nil and compliant.status == "False" then
  hs.message = hs.message .. "; scan findings over the thresholds (" .. compliant.message .. ")"
end
return hs
