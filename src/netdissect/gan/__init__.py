"""Generators: loading them with seeded latents and checks, training the embedded one, and interventions."""
