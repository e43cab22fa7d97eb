"""scOT / Poseidon: shapes, resolution handling, lead-time conditioning, official checkpoint layout,
fine-tuning re-initialisation, training, rollouts, all2all pairs and the median relative L1 metric."""
import json
import re

import pytest
import torch

from sciml.models import load as registry_load
from sciml.models import save as registry_save
from sciml.models.scot import ScOT, ScOTConfig, spectral_resample
from sciml.models.scot_data import all2all_pairs, median_relative_l1, relative_l1, rollout

TINY = dict(image_size=16, patch_size=2, num_channels=4, num_out_channels=4, embed_dim=8, depths=[1, 1],
            num_heads=[1, 2], window_size=4, skip_connections=[1, 0], drop_path_rate=0.0, use_conditioning=True)


def tiny(seed=0, **overrides):
    torch.manual_seed(seed)
    return ScOT(**{**TINY, **overrides}).eval()


def fields(b=2, c=4, n=16, seed=1):
    return torch.randn(b, c, n, n, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------ shapes
def test_shapes_and_output_object():
    model = tiny(num_out_channels=2, num_channels=3)
    out = model(fields(c=3), torch.tensor([0.1, 0.5]))
    assert out.output.shape == (2, 2, 16, 16) and out.loss is None
    # a second stage with window clipped to the 4x4 grid: no shift there; stage 0 (8x8) shifts odd blocks
    deep = tiny(depths=[2, 2], skip_connections=[2, 0])
    blocks0, blocks1 = deep.encoder.layers[0].blocks, deep.encoder.layers[1].blocks
    assert [b.shift for b in blocks0] == [0, 2] and [b.window for b in blocks1] == [4, 4]
    assert [b.shift for b in blocks1] == [0, 0]
    assert [b.shift for b in deep.decoder.layers[1].blocks] == [2, 0]  # official reversed build order
    assert deep(fields(), 0.3).output.shape == (2, 4, 16, 16)


def test_window_padding_when_resolution_is_not_a_window_multiple():
    model = tiny(image_size=24, window_size=5, depths=[2, 1], skip_connections=[1, 0])  # 12x12 grid, window 5
    assert model.encoder.layers[0].blocks[1].padded == 15
    assert model(fields(n=24), 0.2).output.shape == (2, 4, 24, 24)


def test_resolution_handling_is_spectral():
    model = tiny()
    for n in (24, 8):
        assert model(fields(n=n), torch.tensor([0.2, 0.4])).output.shape == (2, 4, n, n)
    # band-limited fields survive up- and down-sampling; the model sees the same input either way
    x = spectral_resample(fields(n=8), 16)  # real and band-limited (|k| <= 4)
    up = spectral_resample(x, 32)
    assert up.shape == (2, 4, 32, 32)
    torch.testing.assert_close(spectral_resample(up, 16), x, atol=1e-5, rtol=0)
    torch.testing.assert_close(up[..., ::2, ::2], x, atol=1e-5, rtol=0)  # interpolates the samples


def _reference_block(block, x, t):
    """A Swin-V2 block computed pair by pair over the whole grid (no window partitioning): tokens attend
    within the same window of the cyclically shifted grid; pairs from different shifted regions get the
    reference's mask (-100, added twice); bias 16 sigmoid(MLP(sign(d) log2(1 + 8|d|/(w-1)) / 3))."""
    sa = block.attention.self
    B, N, C = x.shape
    r, w, s, H = block.res, block.window, block.shift, sa.heads
    split = lambda y: y.view(B, N, H, C // H).transpose(1, 2)  # noqa: E731
    q, k, v = split(sa.query(x)), split(sa.key(x)), split(sa.value(x))
    i, j = torch.arange(N) // r, torch.arange(N) % r
    ri, rj = (i - s) % r, (j - s) % r  # position in the shifted grid
    window = (ri // w) * (r // w) + rj // w
    band = lambda c: (c >= r - w).long() + (c >= r - s).long() if s else torch.zeros_like(c)  # noqa: E731
    region = band(ri) * 3 + band(rj)
    d = torch.stack([(ri % w)[:, None] - (ri % w)[None, :], (rj % w)[:, None] - (rj % w)[None, :]], -1).float()
    d = 8 * d / (w - 1)
    bias = 16 * torch.sigmoid(sa.continuous_position_bias_mlp(torch.sign(d) * torch.log2(d.abs() + 1) / 3))
    logits = torch.nn.functional.normalize(q, dim=-1) @ torch.nn.functional.normalize(k, dim=-1).transpose(-1, -2)
    logits = logits * sa.logit_scale.clamp(max=torch.log(torch.tensor(100.0))).exp() + bias.permute(2, 0, 1)
    logits = logits - 200.0 * (region[:, None] != region[None, :])
    logits = logits.masked_fill(window[:, None] != window[None, :], float("-inf"))
    att = (torch.softmax(logits, -1) @ v).transpose(1, 2).reshape(B, N, C)
    x = x + block.layernorm_before(block.attention.output(att), t)
    return x + block.layernorm_after(block.output(block.intermediate(x)), t)


def test_swin_blocks_match_a_pairwise_reference():
    model = tiny(depths=[2, 2], skip_connections=[2, 0])
    with torch.no_grad():
        for p in model.parameters():  # break the symmetric init so every term matters
            p.add_(0.3 * torch.randn_like(p))
        x, t = torch.randn(2, 64, 8), torch.tensor([0.3, 0.8])
        for block in model.encoder.layers[0].blocks:  # shift 0, then shift 2 with the mask
            torch.testing.assert_close(block(x, t), _reference_block(block, x, t), atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------------------------ conditioning
def test_lead_time_conditioning_changes_the_output():
    model, x = tiny(), fields()
    a = model(x, torch.tensor([0.1, 0.1])).output
    b = model(x, torch.tensor([0.7, 0.7])).output
    assert (a - b).abs().max() > 1e-4
    torch.testing.assert_close(model(x, 0.1).output, a, rtol=0, atol=0)  # scalar broadcast
    with pytest.raises(ValueError, match="time"):
        model(x)

    plain = tiny(use_conditioning=False)
    assert not any("norm.weight.weight" in k for k in plain.state_dict())
    y = plain(x, torch.tensor([0.1, 0.1])).output
    torch.testing.assert_close(plain(x, torch.tensor([0.7, 0.7])).output, y, rtol=0, atol=0)
    torch.testing.assert_close(plain(x).output, y, rtol=0, atol=0)
    assert plain.config.learn_residual is False  # forced off without conditioning (official)


# ----------------------------------------------------------------------------------------- presets
def _count(cfg):
    """Closed-form parameter count of a conditioned ConvNeXt-skip scOT with qkv biases."""
    cln = lambda d: 4 * d  # noqa: E731  Linear(1, d) for the scale and for the shift
    block = lambda d, h: 12 * d * d + 16 * d + 513 * h + 1536  # noqa: E731  q,k,v,out, MLP, 2 norms, pos. MLP
    E, p, L = cfg.embed_dim, cfg.patch_size, len(cfg.depths)
    n = cfg.num_channels * E * p * p + E + cln(E)
    n += cfg.embed_dim * cfg.num_out_channels * p * p + cfg.num_out_channels + 25 * cfg.num_out_channels ** 2
    for s in range(L):
        d = E * 2 ** s
        n += 2 * cfg.depths[s] * block(d, cfg.num_heads[s])  # encoder and decoder stage
        n += int(cfg.skip_connections[s]) * (8 * d * d + 60 * d)  # ConvNeXt blocks
        n += (8 * d * d + 8 * d) if s < L - 1 else 0  # patch merging
        n += (2 * d * d + d * d // 4 + 2 * d) if s > 0 else 0  # patch unmerging
    return n


def test_presets_and_parameter_counts():
    cfg = ScOTConfig.preset("T")
    assert (cfg.embed_dim, cfg.depths, cfg.num_heads, cfg.skip_connections, cfg.window_size, cfg.patch_size) == \
        (48, [4, 4, 4, 4], [3, 6, 12, 24], [2, 2, 2, 0], 16, 4)
    assert ScOTConfig.preset("L", image_size=64).image_size == 64
    assert ScOTConfig.preset("B", num_out_channels=1).channel_slice_list_normalized_loss is None
    t = sum(p.numel() for p in ScOT.from_config(cfg).parameters())
    small = ScOT(**TINY)
    assert _count(cfg) == t and _count(small.config) == sum(p.numel() for p in small.parameters())
    b, large = _count(ScOTConfig.preset("B")), _count(ScOTConfig.preset("L"))
    assert abs(t - 21e6) < 0.15 * 21e6, t  # paper: Poseidon-T ~21M (measured 20.77M)
    assert abs(b - 158e6) < 0.15 * 158e6, b  # paper: Poseidon-B ~158M (157.73M)
    assert abs(large - 629e6) < 0.15 * 629e6, large  # paper: Poseidon-L ~629M (628.58M)
    with pytest.raises(ValueError, match="preset"):
        ScOTConfig.preset("XL")


# -------------------------------------------------------------------------------------- checkpoint
OFFICIAL_PATTERNS = [
    r"embeddings\.patch_embeddings\.projection\.(weight|bias)",
    r"embeddings\.norm\.(weight|bias)\.(weight|bias)",
    r"(en|de)coder\.layers\.\d\.blocks\.\d\.attention\.self\.(query|value)\.(weight|bias)",
    r"(en|de)coder\.layers\.\d\.blocks\.\d\.attention\.self\.key\.weight",
    r"(en|de)coder\.layers\.\d\.blocks\.\d\.attention\.self\.logit_scale",
    r"(en|de)coder\.layers\.\d\.blocks\.\d\.attention\.self\.continuous_position_bias_mlp\.0\.(weight|bias)",
    r"(en|de)coder\.layers\.\d\.blocks\.\d\.attention\.self\.continuous_position_bias_mlp\.2\.weight",
    r"(en|de)coder\.layers\.\d\.blocks\.\d\.attention\.output\.dense\.(weight|bias)",
    r"(en|de)coder\.layers\.\d\.blocks\.\d\.(intermediate|output)\.dense\.(weight|bias)",
    r"(en|de)coder\.layers\.\d\.blocks\.\d\.layernorm_(before|after)\.(weight|bias)\.(weight|bias)",
    r"encoder\.layers\.0\.downsample\.reduction\.weight",
    r"encoder\.layers\.0\.downsample\.norm\.(weight|bias)\.(weight|bias)",
    r"decoder\.layers\.0\.upsample\.(upsample|mixup)\.weight",
    r"decoder\.layers\.0\.upsample\.norm\.(weight|bias)\.(weight|bias)",
    r"residual_blocks\.0\.0\.(dwconv|pwconv1|pwconv2)\.(weight|bias)",
    r"residual_blocks\.0\.0\.norm\.(weight|bias)\.(weight|bias)",
    r"residual_blocks\.0\.0\.weight",
    r"patch_recovery\.projection\.(weight|bias)",
    r"patch_recovery\.mixup\.weight",
]
OFFICIAL_NAMES = [
    "embeddings.patch_embeddings.projection.weight", "embeddings.norm.weight.weight", "embeddings.norm.bias.bias",
    "encoder.layers.0.blocks.0.attention.self.query.weight", "encoder.layers.1.blocks.0.attention.self.logit_scale",
    "encoder.layers.0.blocks.0.attention.self.continuous_position_bias_mlp.0.weight",
    "encoder.layers.0.blocks.0.attention.output.dense.bias", "encoder.layers.1.blocks.0.layernorm_before.weight.weight",
    "encoder.layers.0.blocks.0.intermediate.dense.weight", "encoder.layers.0.downsample.reduction.weight",
    "decoder.layers.0.upsample.upsample.weight", "decoder.layers.0.upsample.mixup.weight",
    "decoder.layers.1.blocks.0.layernorm_after.bias.bias", "residual_blocks.0.0.dwconv.weight",
    "residual_blocks.0.0.weight", "patch_recovery.projection.bias", "patch_recovery.mixup.weight",
]


def _keys(path):
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return set(f.keys())


def test_save_pretrained_round_trip_is_bit_exact_with_official_names(tmp_path):
    model = tiny(channel_slice_list_normalized_loss=[0, 1, 3, 4])
    with torch.no_grad():  # move every tensor off its init value so a forgotten copy would show
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    model.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    for name in ScOTConfig.field_names():
        assert name in cfg
    assert cfg["model_type"] == "swinv2" and cfg["architectures"] == ["ScOT"]
    assert (cfg["num_layers"], cfg["hidden_size"], cfg["pretrained_window_sizes"]) == (2, 16, [0, 0, 0, 0])

    keys = _keys(tmp_path / "model.safetensors")
    assert keys == set(model.state_dict())
    assert not any("relative_" in k or "attn_mask" in k for k in keys)  # non-persistent buffers
    for k in keys:
        assert any(re.fullmatch(p, k) for p in OFFICIAL_PATTERNS), k
    for p in OFFICIAL_PATTERNS:
        assert any(re.fullmatch(p, k) for k in keys), p
    assert set(OFFICIAL_NAMES) <= keys

    loaded = ScOT.from_pretrained(tmp_path)
    assert loaded.loading_info == {"reinitialized": [], "ignored": []}
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    x, t = fields(), torch.tensor([0.2, 0.9])
    assert torch.equal(loaded(x, t).output, model(x, t).output)
    assert loaded.config.channel_slice_list_normalized_loss == [0, 1, 3, 4]


def test_config_json_unknown_keys_kept_missing_keys_default(tmp_path):
    model = tiny()
    model.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    del cfg["initializer_range"], cfg["hidden_act"]
    cfg.update(transformers_version="4.35.2", some_future_field=[1, 2])
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    loaded = ScOT.from_pretrained(tmp_path)
    assert loaded.config.initializer_range == 0.02 and loaded.config.hidden_act == "gelu"
    assert loaded.config.extra["some_future_field"] == [1, 2]
    loaded.save_pretrained(tmp_path / "again")
    again = json.loads((tmp_path / "again" / "config.json").read_text())
    assert again["transformers_version"] == "4.35.2" and again["some_future_field"] == [1, 2]


def test_checkpoint_with_persistent_position_tables_loads(tmp_path):
    from safetensors.torch import save_file

    model = tiny()
    model.save_pretrained(tmp_path)
    state = dict(model.state_dict())
    attn = model.encoder.layers[0].blocks[0].attention.self
    state["encoder.layers.0.blocks.0.attention.self.relative_coords_table"] = attn.relative_coords_table
    state["encoder.layers.0.blocks.0.attention.self.relative_position_index"] = attn.relative_position_index
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "model.safetensors"))
    loaded = ScOT.from_pretrained(tmp_path)
    assert len(loaded.loading_info["ignored"]) == 2


def test_finetune_replaces_embedding_and_recovery_and_loads_the_rest(tmp_path):
    model = tiny()
    model.save_pretrained(tmp_path)
    ft, info = ScOT.from_pretrained(tmp_path, config_overrides={"num_channels": 2, "num_out_channels": 1},
                                    return_info=True)
    fresh = {"embeddings.patch_embeddings.projection.weight", "embeddings.patch_embeddings.projection.bias",
             "patch_recovery.projection.weight", "patch_recovery.projection.bias", "patch_recovery.mixup.weight"}
    assert set(info["reinitialized"]) == fresh
    old = model.state_dict()
    for k, v in ft.state_dict().items():
        if k not in fresh:
            assert torch.equal(v, old[k]), k
    assert ft(fields(c=2), 0.5).output.shape == (2, 1, 16, 16)

    # only the output channels change: the embedding is kept
    _, info = ScOT.from_pretrained(tmp_path, config_overrides={"num_out_channels": 2}, return_info=True)
    assert all(k.startswith("patch_recovery.") for k in info["reinitialized"])
    # the official flag re-initialises both even with the same channels
    torch.manual_seed(123)
    same, info = ScOT.from_pretrained(tmp_path, replace_embedding_recovery=True, return_info=True)
    assert set(info["reinitialized"]) == fresh
    assert not torch.equal(same.patch_recovery.mixup.weight, model.patch_recovery.mixup.weight)
    assert torch.equal(same.encoder.layers[1].blocks[0].attention.self.key.weight,
                       model.encoder.layers[1].blocks[0].attention.self.key.weight)


def test_from_pretrained_is_strict_with_clear_errors(tmp_path):
    from safetensors.torch import save_file

    model = tiny()
    model.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"layernorm_before\.weight\.weight"):  # plain LN has other names
        ScOT.from_pretrained(tmp_path, config_overrides={"use_conditioning": False})
    with pytest.raises(ValueError, match="unknown field.*num_chanels"):
        ScOT.from_pretrained(tmp_path, config_overrides={"num_chanels": 2})
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    state.pop("decoder.layers.0.upsample.mixup.weight")
    state["encoder.layers.0.extra.weight"] = torch.zeros(1)
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match=r"missing.*upsample\.mixup\.weight.*not in the model.*extra\.weight"):
        ScOT.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="config.json"):
        ScOT.from_pretrained(tmp_path / "nowhere")


def test_sciml_registry_save_and_load(tmp_path):
    model = tiny()
    registry_save(model, tmp_path)
    loaded = registry_load(tmp_path)
    x = fields()
    assert torch.equal(loaded(x, 0.3).output, model(x, 0.3).output)


# ------------------------------------------------------------------------------------- training
def test_loss_options():
    model = tiny(channel_slice_list_normalized_loss=[0, 1, 3, 4])
    x, y = fields(), fields(seed=5)
    out = model(x, 0.2, labels=y)
    pred = out.output
    groups = [(0, 1), (1, 3), (3, 4)]
    ref = sum((pred[:, a:b] - y[:, a:b]).abs().mean() / y[:, a:b].abs().mean() for a, b in groups) / 3
    torch.testing.assert_close(out.loss, ref)
    mask = torch.tensor([[False, False, False, True]] * 2)  # e.g. pressure not predicted
    masked = model(x, 0.2, labels=y, pixel_mask=mask).output
    assert torch.equal(masked[:, 3], y[:, 3]) and torch.equal(masked[:, :3], pred[:, :3])
    mse = tiny(p=2)
    torch.testing.assert_close(mse(x, 0.2, labels=y).loss, ((mse(x, 0.2).output - y) ** 2).mean())


def test_few_adamw_steps_reduce_the_loss():
    """Official initialisation (lead-time norms start near zero), smooth fields, a lead-time-dependent
    target; measured: the loss falls to ~0.24 of its start in 40 steps."""
    model = tiny(num_channels=2, num_out_channels=2).train()
    g = torch.Generator().manual_seed(0)
    x = spectral_resample(torch.randn(8, 2, 4, 4, generator=g), 16)
    t = torch.rand(8, generator=g)
    y = x * (1 + t[:, None, None, None])
    opt = torch.optim.AdamW(model.param_groups(lr=2e-2, weight_decay=1e-4))
    losses = []
    for _ in range(40):
        loss = model(x, t, labels=y).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_param_groups_separate_learning_rates():
    model = tiny()
    groups = model.param_groups(lr=5e-5, lr_embedding_recovery=5e-4, lr_time_embedding=1e-3, weight_decay=1e-6)
    by = {g["name"]: g for g in groups}
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    names = {id(p): n for n, p in model.named_parameters()}
    emb = {names[id(p)] for p in by["embedding_recovery"]["params"]}
    assert emb == {n for n in names.values() if n.startswith(("embeddings.", "patch_recovery."))}
    assert by["embedding_recovery"]["lr"] == 5e-4
    time = {names[id(p)] for p in by["time_embedding"]["params"]}
    assert "encoder.layers.0.blocks.0.layernorm_after.weight.weight" in time
    assert by["time_embedding"]["lr"] == 1e-3 and by["time_embedding"]["weight_decay"] == 0.0
    no_decay = {names[id(p)] for p in by["no_decay"]["params"]}
    assert "encoder.layers.0.blocks.0.attention.self.query.bias" in no_decay
    assert by["decay"]["weight_decay"] == 1e-6 and by["decay"]["lr"] == 5e-5
    official = {g["name"]: g for g in model.param_groups(5e-5, 5e-4, 1e-3, 1e-6, match_official_trainer=True)}
    quirk = {names[id(p)] for p in official["decay"]["params"]}
    assert "encoder.layers.0.blocks.0.layernorm_after.weight.weight" in quirk
    plain = model.param_groups(lr=1e-3)
    assert {g["name"] for g in plain} == {"decay", "no_decay"}


# -------------------------------------------------------------------------------------- rollouts
class _Linear(torch.nn.Module):
    """u(t0 + t) = u(t0) + t c: exactly linear in the lead time (a stand-in for a consistent model)."""

    def __init__(self, out_channels):
        super().__init__()
        self.out = out_channels
        self.c = torch.linspace(-1, 1, out_channels).view(1, -1, 1, 1)

    def forward(self, x, t):
        return x[:, : self.out] + t.view(-1, 1, 1, 1) * self.c


def test_rollout_direct_equals_composed_for_a_linear_model():
    x0 = fields(c=3)
    tau = torch.tensor([0.25, 0.5])
    for model in (_Linear(3), _Linear(2)):  # the second has a static third input channel re-appended
        direct = rollout(model, x0, 2 * tau, steps=1)
        two = rollout(model, x0, 2 * tau, steps=2)
        torch.testing.assert_close(two, direct, rtol=0, atol=1e-6)
        by_hand = model(torch.cat([model(x0, tau), x0[:, model.out:]], 1), tau)
        torch.testing.assert_close(two, by_hand, rtol=0, atol=0)
        assert rollout(model, x0, 2 * tau, steps=4, return_all=True).shape == (4, 2, model.out, 16, 16)


def test_rollout_with_scot():
    model, x0 = tiny(num_channels=3, num_out_channels=2), fields(c=3)
    with torch.no_grad():
        assert torch.equal(rollout(model, x0, 0.4), model(x0, torch.tensor([0.4, 0.4])).output)
        assert rollout(model, x0, 0.4, steps=3).shape == (2, 2, 16, 16)
    with pytest.raises(ValueError, match="steps"):
        rollout(model, x0, 0.4, steps=0)


# --------------------------------------------------------------------------------- pairs, metric
def test_all2all_pairs():
    pairs = all2all_pairs(8)
    assert len(pairs) == 36 and pairs[0] == (0, 0) and pairs[-1] == (7, 7) and all(i <= j for i, j in pairs)
    official = all2all_pairs(15, step=2, max_steps=7)  # snapshots 0, 2, ..., 14
    assert len(official) == 36 and (0, 14) in official and (1, 3) not in official
    assert len(all2all_pairs(11)) == 66  # pretraining: 11 snapshots
    assert all2all_pairs(8, allowed_transitions=[1]) == [(i, i + 1) for i in range(7)]
    with pytest.raises(ValueError, match="max_steps"):
        all2all_pairs(8, step=2, max_steps=4)


def test_median_relative_l1_against_hand_computation():
    target = torch.ones(3, 2, 2, 2)  # |target| sums: 4 per channel
    pred = target.clone()
    pred[0, 0] += 0.1  # sample 0, channel 0: 0.4 / 4 = 0.1
    pred[1, 0] += 0.2  # 0.2
    pred[2, 0] += 0.4  # 0.4
    pred[:, 1] -= torch.tensor([0.5, 0.0, 0.25]).view(3, 1, 1)  # channel 1: 0.5, 0, 0.25
    torch.testing.assert_close(relative_l1(pred, target, percent=False),
                               torch.tensor([[0.1, 0.5], [0.2, 0.0], [0.4, 0.25]]))
    # medians 0.2 and 0.25 -> mean 0.225, in percent 22.5
    torch.testing.assert_close(median_relative_l1(pred, target), torch.tensor(22.5))
    # one group over both channels: per sample (0.4 + 2) / 8, (0.8 + 0) / 8, (1.6 + 1) / 8 -> median 0.3
    torch.testing.assert_close(median_relative_l1(pred, target, [0, 2], percent=False), torch.tensor(0.3))
    # even sample count: mean of the two middle values, as numpy
    torch.testing.assert_close(median_relative_l1(pred[:2], target[:2], [0, 1], percent=False),
                               torch.tensor(0.15))


# ------------------------------------------------------------------------------------------ errors
def test_clear_errors():
    model = tiny()
    with pytest.raises(ValueError, match="3 channels.*num_channels = 4"):
        model(fields(c=3), 0.1)
    with pytest.raises(ValueError, match="square"):
        model(torch.randn(1, 4, 16, 12), 0.1)
    with pytest.raises(ValueError, match="skip_connections must have len\\(depths\\) = 2"):
        ScOT(**{**TINY, "skip_connections": [1, 1, 0]})
    with pytest.raises(ValueError, match="num_heads\\[1\\] = 3 must divide"):
        ScOT(**{**TINY, "num_heads": [1, 3]})
    with pytest.raises(ValueError, match="patch_size"):
        ScOT(**{**TINY, "image_size": 15})
    with pytest.raises(ValueError, match="labels must have shape"):
        model(fields(), 0.1, labels=torch.zeros(2, 1, 16, 16))
