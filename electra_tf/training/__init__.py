"""What every training stage shares: checkpoints and their resume rule."""
