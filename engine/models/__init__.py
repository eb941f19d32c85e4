"""The one model locator: a path, run id, run folder, checkpoint, adapter or hub id made into the
folder to load (locate.py), a spec's model entry with its adapter (choice.py), the tokenizer
loader (tokenizer.py), and the check of a length against the positions a model reads
(positions.py). Light: torch and transformers are imported by the loaders when they run."""

from engine.models.choice import ModelChoice, resolve_choice
from engine.models.locate import (RUN_OUTPUTS, TOKENIZER_FILES, WEIGHT_FILES, ModelLocation, has_tokenizer,
                                  has_weights, is_hub_id, locate_model, model_label, trained_on)
from engine.models.positions import check_positions, model_positions
from engine.models.tokenizer import choice_tokenizer, load_tokenizer

__all__ = ["RUN_OUTPUTS", "TOKENIZER_FILES", "WEIGHT_FILES", "ModelChoice", "ModelLocation", "check_positions",
           "choice_tokenizer", "has_tokenizer", "has_weights", "is_hub_id", "load_tokenizer", "locate_model",
           "model_label", "model_positions", "resolve_choice", "trained_on"]
