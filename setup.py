"""electra-tf: ELECTRA, BERT and ALE pretraining and finetuning on TensorFlow 2 / Keras 3."""

from setuptools import find_packages, setup

# Pinned to the stack the project is tested on (see docs/layout.md): TF 2.21 with Keras 3 and
# keras-hub, tensorflow-text matched to TF.
INSTALL_REQUIRES = [
    "tensorflow~=2.21.0",
    "keras>=3.15,<3.16",
    "keras-hub>=0.32,<0.33",
    "tensorflow-text>=2.21.1,<2.22",
    "tensorflow-datasets>=4.9.10,<4.10",
    "tensorboard~=2.21.0",
    "whoosh==2.7.4",
    "absl-py>=2.1,<3",
    "scipy>=1.13,<2",
    "scikit-learn>=1.5,<2",
    "matplotlib>=3.9,<4",
    "tqdm>=4.66,<5",
    "safetensors>=0.4,<1",
    "mwparserfromhell==0.7.2",
    "blingfire==0.1.8",
    "bm25s==0.3.16",  # needs only numpy
    "seqeval==1.2.2",  # chunk F1 as conlleval; needs numpy and scikit-learn
]

# Reading pytorch_model.bin, and the parity tests against Hugging Face transformers.
# torch pinned to the version whose CPU build the test machines carry (an unpinned torch
# pulls a multi-GB CUDA build); nothing in `make demo` needs it.
INTEROP = ["torch==2.13.0", "transformers==5.23.0"]

EXTRAS_REQUIRE = {
    "dev": ["ruff==0.17.6"],
    "interop": INTEROP,
    # What `make test` adds: pytest (with xdist: two workers; pytest-timeout: a hung test
    # shows its stacks), the notebook runner, and the interop packages.
    "test": ["pytest>=8,<10", "pytest-xdist==3.8.0", "pytest-timeout==2.4.0",
             "nbclient==0.11.0", "nbformat==5.11.1", "ipykernel==7.4.0", *INTEROP],
    # One or more NVIDIA GPUs: TensorFlow with its CUDA and cuDNN libraries from PyPI.
    "gpu": ["tensorflow[and-cuda]~=2.21.0"],
}

CONSOLE_SCRIPTS = [
    "electra-flops = electra_tf.run_flops:main",
    "electra-convert = electra_tf.run_convert:main",
    "electra-export = electra_tf.run_export:main",
    "electra-predict = electra_tf.run_predict:main",
    "electra-pretrain = electra_tf.run_pretraining:main",
    "electra-finetune = electra_tf.run_finetuning:main",
    "electra-score-predictions = electra_tf.run_finetuning:score_main",
    "electra-samples = data_prep.samples:main",
    "electra-build-vocab = data_prep.build_vocab:main",
    "electra-build-pretraining-dataset = data_prep.build_pretraining_dataset:main",
    "electra-build-tlm-index = data_prep.build_tlm_index:main",
    "electra-tlm = electra_tf.run_tlm:main",
    "electra-baselines = electra_tf.run_baselines:main",
    "electra-study = electra_tf.run_study:main",
]

setup(
    name="electra-tf",
    version="0.1.0",
    description=__doc__,
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    # The Pythons TensorFlow 2.21 and tensorflow-text 2.21 have wheels for (Linux x86_64 /
    # aarch64, macOS arm64; tensorflow-text has no Windows wheels).
    python_requires=">=3.10,<3.14",
    packages=find_packages(include=["electra_tf", "electra_tf.*", "data_prep", "data_prep.*"]),
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points={"console_scripts": CONSOLE_SCRIPTS},
)
