// One stage of the recipe (dSFT, pretraining or dDPO) from its TrainConfig to a trained model on
// disk: the starting model and its tokenizer loaded, the data read and split, for DPO the
// reference log-probs computed once (or read back from output_dir when resuming), then the one
// trainer. The CLI's sft/pretrain/dpo and the end-to-end recipe all run stages through here.
#pragma once
#include "train/train_config.h"
#include "train/trainer.h"

namespace zephyr {

enum class Stage { Sft, Pretrain, Dpo };

// Prints what it loads and how many rows it keeps to stderr, as the trainer prints its steps.
TrainSummary run_stage(Stage stage, const TrainConfig& config, bool resume);

}  // namespace zephyr
