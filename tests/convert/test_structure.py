"""Model surgery behind --per-tensor QAT and --prune-block, on small hand-built Keras models (fast)."""

from __future__ import annotations

import numpy as np
import pytest


def _conv_bn_relu_model(seed: int = 0):
    import tf_keras as keras

    rng = np.random.default_rng(seed)
    inp = keras.Input((8, 8, 3), name="image")
    x = keras.layers.Rescaling(1.0 / 255.0, name="rescaling")(inp)
    x = keras.layers.Conv2D(16, 3, padding="same", use_bias=False, name="stem_conv")(x)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.ReLU(6.0, name="stem_relu")(x)
    # depth multiplier 2: output channel c * 2 + m, so a wrongly ordered BatchNorm scale shows
    x = keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, use_bias=False, name="dw")(x)
    x = keras.layers.BatchNormalization(name="dw_bn")(x)
    x = keras.layers.ReLU(6.0, name="dw_relu")(x)
    y = keras.layers.Conv2D(32, 1, use_bias=False, name="project")(x)
    y = keras.layers.BatchNormalization(name="project_bn")(y)
    y = keras.layers.ReLU(name="project_relu")(y)  # a plain ReLU, as MobileNetV3 has
    x = keras.layers.Add(name="add")([x, y])  # dw_relu's output also feeds the residual Add
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    out = keras.layers.Dense(4, activation="softmax", name="head")(x)
    model = keras.Model(inp, out)
    for layer in model.layers:  # BatchNorm statistics far from identity, so a wrong fold shows
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 2.0, n), rng.normal(0, 0.5, n), rng.normal(0, 0.5, n),
                               rng.uniform(0.2, 3.0, n)])
    return model


def test_fold_batchnorm_keeps_the_function_and_removes_every_batchnorm():
    import tf_keras as keras

    from edgelite.convert.optimize.fold_batchnorm import _convs_before_activation, fold_batchnorm

    model = _conv_bn_relu_model()
    folded = fold_batchnorm(model)
    kinds = [type(layer).__name__ for layer in folded.layers]
    assert "BatchNormalization" not in kinds and "ReLU" not in kinds
    assert folded.get_layer("stem_relu").get_config()["activation"] == "relu6"
    assert folded.get_layer("project").use_bias and folded.get_layer("dw").use_bias
    assert folded.get_layer("project").get_config()["activation"] == "relu"
    assert "project_relu" not in [layer.name for layer in folded.layers]
    x = np.random.default_rng(1).integers(0, 256, (16, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(folded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
    # the kernels tfmot must quantize alone (the activation after them carries the output range)
    assert _convs_before_activation(folded) == {"stem_conv", "dw"}
    assert isinstance(model.get_layer("stem_bn"), keras.layers.BatchNormalization)  # the original is untouched


def test_block_pruning_zeroes_whole_runs_along_the_input_channels():
    import tf_keras as keras

    from edgelite.convert.optimize.pruning import prune

    inp = keras.Input((4, 4, 32), name="image")
    x = keras.layers.Conv2D(8, 1, name="pw")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(3, activation="softmax", name="head")(keras.layers.Dense(32, name="fc")(x))
    model = keras.Model(inp, out)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4, 4, 32)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    from tensorflow_model_optimization.python.core.sparsity.keras import pruning_impl

    base = pruning_impl.Pruning
    pruned, info = prune(model, x, y, sparsity=0.5, epochs=2, batch_size=16, block=8, log=lambda s: None)
    assert pruning_impl.Pruning is base  # tfmot's class is back once the wrappers are built
    assert info["block"] == 8 and info["achieved"] == pytest.approx(0.5, abs=0.02)
    for name in ("pw", "fc"):
        kernel = pruned.get_layer(name).get_weights()[0]
        # one output channel's weights in .tflite order ((kh, kw, in) flattened), cut in runs of 8
        runs = kernel.reshape(-1, kernel.shape[-1]).T.reshape(kernel.shape[-1], -1, 8)
        zero_runs = (runs == 0).all(-1)
        assert zero_runs.mean() == pytest.approx(0.5, abs=0.07), name
        assert ((runs == 0).any(-1) == zero_runs).all(), f"{name}: a run is partly pruned"


def test_unstructured_pruning_is_not_blocky():
    import tf_keras as keras

    from edgelite.convert.optimize.pruning import prune

    inp = keras.Input((4, 4, 32), name="image")
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(8, 1, name="pw")(inp))
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax", name="head")(x))
    rng = np.random.default_rng(0)
    pruned, info = prune(model, rng.normal(size=(32, 4, 4, 32)).astype(np.float32), rng.integers(0, 3, 32),
                         sparsity=0.5, epochs=1, batch_size=16, log=lambda s: None)
    runs = pruned.get_layer("pw").get_weights()[0].reshape(32, 8).T.reshape(8, -1, 8)
    assert info["block"] == 1 and ((runs == 0).any(-1) & ~(runs == 0).all(-1)).any()


def test_per_tensor_qat_file_has_one_scale_per_kernel_after_relu6_relu_and_linear_convs():
    from tensorflow.lite.tools import flatbuffer_utils as fu

    from edgelite.convert.optimize.qat import quantize_aware
    from edgelite.convert.tflite import to_tflite

    model = _conv_bn_relu_model()
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (32, 8, 8, 3)).astype(np.uint8)
    y = rng.integers(0, 4, 32)
    qat, info = quantize_aware(model, x, y, x, epochs=1, batch_size=16, lr=0.0, per_tensor=True, log=lambda s: None)
    assert info["per_channel"] is False and info["unquantized_kernels"] == []
    # what QAT trains: every kernel fake-quantized, with one (scalar) range
    ranges = {layer.layer.name: [tuple(w.shape) for w in layer.weights if w.name.split("/")[-1].startswith(
        ("kernel_min", "depthwise_kernel_min"))] for layer in qat.layers if hasattr(layer, "layer")
        and type(layer.layer).__name__ in ("Conv2D", "DepthwiseConv2D", "Dense")}
    assert ranges == {"stem_conv": [()], "dw": [()], "project": [()], "head": [()]}
    obj = fu.convert_bytearray_to_object(bytearray(to_tflite(qat, "full_int8", calibration=x, per_tensor=True)))
    sg = obj.subgraphs[0]
    scales = [(fu.opcode_to_name(obj, op.opcodeIndex), len(sg.tensors[op.inputs[1]].quantization.scale))
              for op in sg.operators
              if fu.opcode_to_name(obj, op.opcodeIndex) in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")]
    # stem (-> ReLU6), project (-> ReLU), depthwise (-> ReLU6) and the head: one scale each
    assert sorted(scales) == [("CONV_2D", 1), ("CONV_2D", 1), ("DEPTHWISE_CONV_2D", 1), ("FULLY_CONNECTED", 1)]


def test_qat_reports_kernels_tfmot_leaves_unquantized():
    """A Conv2D -> ReLU pair without BatchNorm (nothing to fold): tfmot's transform gives the conv a
    no-op config, and QAT says so instead of pretending the kernel trained at int8."""
    import tf_keras as keras

    from edgelite.convert.optimize.qat import quantize_aware

    inp = keras.Input((8, 8, 3), name="image")
    x = keras.layers.Conv2D(8, 3, name="conv")(keras.layers.Rescaling(1.0 / 255.0, name="rescaling")(inp))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.ReLU(name="relu")(x))
    model = keras.Model(inp, keras.layers.Dense(2, activation="softmax", name="head")(x))
    x = np.random.default_rng(0).integers(0, 256, (16, 8, 8, 3)).astype(np.uint8)
    lines = []
    _, info = quantize_aware(model, x, np.zeros(16, np.int64), x, epochs=1, lr=0.0, log=lines.append)
    assert info["unquantized_kernels"] == ["conv"]
    assert any("did not fake-quantize the kernels of 1 layer(s)" in line for line in lines)
