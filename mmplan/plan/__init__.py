"""Stage 4: the plan, a typed value (model), computed by a pure diff and shown by separate renderers."""
