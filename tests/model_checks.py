"""Test helpers the checkpoint tests share: weight equality, and electra-convert run in
this process."""

import numpy as np


def assert_same_weights(a, b):
    """`a` and `b` hold the same weights, in the same order."""
    assert len(a.weights) == len(b.weights)
    for x, y in zip(a.weights, b.weights, strict=True):
        np.testing.assert_array_equal(x.numpy(), y.numpy(), err_msg=x.path)


def convert_here(*args) -> str:
    """electra-convert's conversion in this process, with `args` as its flags."""
    from absl import flags

    from electra_tf import run_convert

    flags.FLAGS.unparse_flags()
    flags.FLAGS(["electra-convert", *args])
    try:
        return run_convert.convert()
    finally:
        flags.FLAGS.unparse_flags()
