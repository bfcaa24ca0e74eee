"""The shapes world: scenes, renderer, literal descriptors, instructions, analyzer."""
