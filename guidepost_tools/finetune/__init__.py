"""Fine-tuning the VLM with LoRA: annotation files, training examples, the training loop, the adapter folder."""
