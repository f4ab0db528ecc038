//! Lifecycle rules, pure: validation, rendering to ECR's JSON grammar, semantic comparison and
//! a local evaluator of ECR's documented semantics (the preview).
