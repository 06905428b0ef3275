"""GPU checks (marker `gpu`, skipped without CUDA): the engine's paths on a CUDA device.

Each test runs the same code on the CPU and on the GPU where the two can be compared, with float32
and TF32 off, so a difference means a device bug (a tensor left on the CPU, a dtype cast, a
non-deterministic reduction in the coder), not rounding.
"""

import pytest
import torch
from conftest import EXAMPLES, make_model
from test_finetune import cfg
from test_models import local_family

from elasticity import archive, finetune, generate, models, scoring
from elasticity.config import UserError

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

TEXTS = [e.prompt + e.response for e in EXAMPLES]


@pytest.fixture(autouse=True)
def no_tf32():
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_full_finetune_on_cuda_matches_cpu(tiny_tokenizer):
    losses = {}
    for device in ("cpu", "cuda"):
        model = make_model(tiny_tokenizer).to(device)
        result = finetune.finetune(model, tiny_tokenizer, EXAMPLES, cfg(), progress=False)
        assert next(result.model.parameters()).device.type == device
        losses[device] = torch.tensor(result.losses)
    assert len(losses["cuda"]) == len(losses["cpu"]) == 6
    torch.testing.assert_close(losses["cuda"], losses["cpu"], rtol=1e-3, atol=1e-4)
    assert losses["cuda"][-1] < losses["cuda"][0]


def test_lora_finetune_on_cuda_trains_only_the_adapters(tiny_tokenizer):
    model = make_model(tiny_tokenizer).to("cuda")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    result = finetune.finetune(model, tiny_tokenizer, EXAMPLES, cfg(lora=True), progress=False)
    trained = dict(result.model.named_parameters())
    changed = [n for n, p in trained.items() if "lora_" in n and p.requires_grad]
    assert changed and all(p.device.type == "cuda" for p in trained.values())
    base = result.model.get_base_model()
    for name, p in base.named_parameters():
        if "lora_" not in name:
            key = name.replace(".base_layer", "")
            assert torch.equal(p.detach(), before[key]), name
    assert all(torch.isfinite(torch.tensor(result.losses)))


def test_generation_on_cuda_is_seeded(tiny_tokenizer):
    model = make_model(tiny_tokenizer).to("cuda").eval()
    prompts = ["the film is", "a dull,", "pack my box"]
    first = generate.generate(model, tiny_tokenizer, prompts, max_new_tokens=8, seed=3, progress=False)
    again = generate.generate(model, tiny_tokenizer, prompts, max_new_tokens=8, seed=3, progress=False)
    other = generate.generate(model, tiny_tokenizer, prompts, max_new_tokens=8, seed=4, progress=False)
    assert first == again and first != other


def test_arithmetic_coding_round_trip_on_cuda(tiny_tokenizer):
    model = make_model(tiny_tokenizer).to("cuda").eval()
    data = "\n".join(TEXTS * 3).encode()
    blob, stats = archive.compress_bytes(data, model, tiny_tokenizer)
    restored, _ = archive.decompress_bytes(blob, model, tiny_tokenizer)
    assert restored == data
    assert stats["bytes_out"] == len(blob) and stats["bytes_in"] == len(data)


def test_kl_on_cuda_matches_cpu(tiny_tokenizer):
    values = []
    for device in ("cpu", "cuda"):
        p = make_model(tiny_tokenizer, seed=0).to(device).eval()
        q = make_model(tiny_tokenizer, seed=1).to(device).eval()
        values.append(scoring.kl_divergence(p, q, tiny_tokenizer, TEXTS, max_length=64))
    assert values[0] > 0
    assert values[1] == pytest.approx(values[0], rel=1e-4)


def test_hub_family_by_path_loads_in_bf16_on_cuda(tiny_model_dir):
    fam = local_family(tiny_model_dir)
    model, _ = models.load(fam, device="cuda")
    assert model.dtype == torch.bfloat16 and next(model.parameters()).device.type == "cuda"
    adapted, _ = models.load(fam, device="cuda", lora=True)
    trainable = [p for p in adapted.parameters() if p.requires_grad]
    assert trainable and all(p.device.type == "cuda" for p in trainable)


def test_a_model_too_big_for_the_card_is_refused_before_loading():
    free = models.available_bytes("cuda")
    too_many = int(free)  # one parameter per free byte: far over the ~16 bytes/parameter full fine-tuning needs
    with pytest.raises(UserError, match=r"GiB free"):
        models.check_fits("huge", too_many, torch.bfloat16, "cuda", lora=False)
