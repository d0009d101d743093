"""Wang, Khabsa and Ma, "To Pretrain or Not to Pretrain" (2020): BiLSTM baselines trained
from scratch against finetuned pretrained encoders, over training-set fractions
(:mod:`.sweep`), and the parameter and inference-latency table (:mod:`.latency`)."""
