"""Classical separation baselines: template-fit deglitching and plain high-pass (issue #5)."""
