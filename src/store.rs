//! store (skeleton: filled in by the module's first real commit)
