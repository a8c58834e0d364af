"""The legal reference pipeline of the Parameter Golf challenge: train → quantize → evaluate."""
