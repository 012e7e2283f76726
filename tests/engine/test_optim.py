"""Optimizers, clip_grad_norm and LR schedules against torch.optim; state dicts; hyperparameter validation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rnn_engine.errors import InvalidInput
from rnn_engine.optim import SGD, Adagrad, Adam, AdamW, RMSprop, clip_grad_norm
from rnn_engine.schedules import ConstantSchedule, CosineSchedule, StepSchedule, make_schedule

STEPS = 5
SHAPES = {"embedding.weight": (6, 3), "head.weight": (2, 4), "head.bias": (2,)}
CASES = [
    ("SGD", SGD, {"lr": 0.1}),
    ("SGD", SGD, {"lr": 0.1, "momentum": 0.9}),
    ("SGD", SGD, {"lr": 0.1, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.05}),
    ("SGD", SGD, {"lr": 0.1, "momentum": 0.8, "nesterov": True, "weight_decay": 0.01}),
    ("SGD", SGD, {"lr": 0.1, "momentum": 0.5, "maximize": True}),
    ("Adam", Adam, {}),
    ("Adam", Adam, {"lr": 0.05, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1}),
    ("Adam", Adam, {"lr": 0.05, "amsgrad": True}),
    ("Adam", Adam, {"lr": 0.05, "betas": (0.3, 0.9)}),  # 1 - beta1 >= 0.5: the other branch of lerp
    ("AdamW", AdamW, {}),
    ("AdamW", AdamW, {"lr": 0.05, "weight_decay": 0.3, "amsgrad": True}),
    ("Adagrad", Adagrad, {}),
    ("Adagrad", Adagrad, {"lr": 0.1, "lr_decay": 0.2, "weight_decay": 0.05,
                          "initial_accumulator_value": 0.4}),
    ("RMSprop", RMSprop, {}),
    ("RMSprop", RMSprop, {"lr": 0.002, "alpha": 0.95}),  # char-rnn's setting
    ("RMSprop", RMSprop, {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.05}),
    ("RMSprop", RMSprop, {"lr": 0.01, "centered": True, "alpha": 0.3}),  # 1 - alpha >= 0.5: other lerp branch
    ("RMSprop", RMSprop, {"lr": 0.01, "centered": True, "momentum": 0.5, "maximize": True}),
]
CASE_IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'defaults'}" for name, _, kw in CASES]


def random_params(rng, dtype):
    return {name: rng.standard_normal(shape).astype(dtype) for name, shape in SHAPES.items()}


def random_grads(rng, params):
    return {name: rng.standard_normal(p.shape).astype(p.dtype) for name, p in params.items()}


# ------------------------------------------------------------------------------------------- torch parity
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("name", "cls", "kwargs"), CASES, ids=CASE_IDS)
def test_optimizer_steps_leave_the_same_weights_as_torch(name, cls, kwargs, dtype):
    torch = pytest.importorskip("torch", reason="PyTorch is the reference oracle")
    rng = np.random.default_rng(0)
    params = random_params(rng, dtype)
    tparams = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in params.items()}
    opt = cls(params, **kwargs)
    topt = getattr(torch.optim, name)(list(tparams.values()), foreach=False, **kwargs)
    for _ in range(STEPS):
        grads = random_grads(rng, params)
        for k, t in tparams.items():
            t.grad = torch.tensor(grads[k])
        opt.step(grads)
        topt.step()
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for k, p in params.items():
        assert p.dtype == dtype
        np.testing.assert_allclose(p, tparams[k].detach().numpy(), rtol=tol, atol=tol, err_msg=k)


def test_default_hyperparameters_equal_torch():
    torch = pytest.importorskip("torch", reason="PyTorch is the reference oracle")
    t = [torch.zeros(1, requires_grad=True)]
    p = {"w": np.zeros(1)}
    for mine, theirs in ((SGD(p), torch.optim.SGD(t)), (Adam(p), torch.optim.Adam(t)),
                         (AdamW(p), torch.optim.AdamW(t)), (Adagrad(p), torch.optim.Adagrad(t)),
                         (RMSprop(p), torch.optim.RMSprop(t))):
        group = theirs.param_groups[0]
        for key, value in mine.hyperparameters().items():
            assert group[key] == (tuple(value) if isinstance(value, list) else value), (type(mine), key)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])  # clipping and not clipping
def test_clip_grad_norm_equals_torch(max_norm, dtype):
    torch = pytest.importorskip("torch", reason="PyTorch is the reference oracle")
    rng = np.random.default_rng(1)
    grads = random_grads(rng, random_params(rng, dtype))
    tensors = []
    for g in grads.values():
        t = torch.zeros(g.shape, dtype=torch.from_numpy(g).dtype, requires_grad=True)
        t.grad = torch.tensor(g.copy())
        tensors.append(t)
    ref = torch.nn.utils.clip_grad_norm_(tensors, max_norm)
    total = clip_grad_norm(grads, max_norm)
    tol = 1e-12 if dtype == np.float64 else 1e-6
    assert total == pytest.approx(ref.item(), rel=tol)
    for g, t in zip(grads.values(), tensors, strict=True):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=tol, atol=tol)
    after = math.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in grads.values()))
    assert after <= max_norm * (1 + 1e-6)


def test_clip_grad_norm_with_nonfinite_gradient_raises_only_when_asked():
    with pytest.raises(InvalidInput, match=r"^grads: "):
        clip_grad_norm({"w": np.array([np.inf, 1.0])}, 1.0, error_if_nonfinite=True)
    assert math.isinf(clip_grad_norm({"w": np.array([np.inf, 1.0])}, 1.0))


# -------------------------------------------------------------------------------- lr and state dicts
def test_setting_lr_changes_the_next_step():
    p = {"w": np.zeros(2)}
    opt = SGD(p, lr=0.1)
    opt.step({"w": np.ones(2)})
    opt.lr = 0.5
    opt.step({"w": np.ones(2)})
    np.testing.assert_allclose(p["w"], [-0.6, -0.6], rtol=1e-15)
    with pytest.raises(InvalidInput, match=r"^lr: "):
        opt.lr = -1


@pytest.mark.parametrize(("name", "cls", "kwargs"), CASES, ids=CASE_IDS)
def test_state_dict_resumes_exactly_and_is_json_and_npz_friendly(name, cls, kwargs, tmp_path):
    rng = np.random.default_rng(2)
    start = random_params(rng, np.float64)
    grads = [random_grads(rng, start) for _ in range(STEPS)]
    straight = {k: v.copy() for k, v in start.items()}
    opt = cls(straight, **kwargs)
    for g in grads:
        opt.step(g)
    resumed = {k: v.copy() for k, v in start.items()}
    first = cls(resumed, **kwargs)
    for g in grads[:2]:
        first.step(g)
    state = first.state_dict()
    np.savez(tmp_path / "buffers.npz", **state["buffers"])
    meta = json.loads(json.dumps({k: state[k] for k in ("kind", "hyperparameters", "step")}))
    with np.load(tmp_path / "buffers.npz") as z:
        loaded = dict(meta, buffers={k: z[k] for k in z.files})
    second = cls(resumed, lr=123.0)  # hyperparameters come from the state, lr included
    second.load_state_dict(loaded)
    assert second.hyperparameters() == first.hyperparameters() and second.step_count == 2
    for g in grads[2:]:
        second.step(g)
    for k in start:
        np.testing.assert_array_equal(resumed[k], straight[k])


def test_load_state_dict_rejects_another_optimizer_kind_and_bad_buffers():
    p = {"w": np.zeros(3)}
    adam = Adam(p)
    adam.step({"w": np.ones(3)})
    with pytest.raises(InvalidInput, match=r"^state: expected kind 'SGD'"):
        SGD(p).load_state_dict(adam.state_dict())
    state = adam.state_dict()
    state["buffers"]["exp_avg.w"] = np.zeros(4)
    with pytest.raises(InvalidInput, match=r"^state\['buffers'\]"):
        Adam(p).load_state_dict(state)


# ---------------------------------------------------------------------------------------------- schedules
def test_step_and_cosine_schedules_equal_torch_schedulers():
    torch = pytest.importorskip("torch", reason="PyTorch is the reference oracle")

    def torch_lrs(make, steps):
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.3)
        sched, out = make(opt), []
        for _ in range(steps):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return out

    step = StepSchedule(0.3, step_size=3, gamma=0.5)
    ref = torch_lrs(lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5), 10)
    np.testing.assert_allclose([step.lr_at(s) for s in range(10)], ref, rtol=1e-14)
    cosine = CosineSchedule(0.3, total_steps=8, min_lr=0.01)
    ref = torch_lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=8, eta_min=0.01), 9)
    np.testing.assert_allclose([cosine.lr_at(s) for s in range(9)], ref, rtol=1e-12)


def test_cosine_warmup_rises_linearly_then_decays_to_min_lr_and_stays():
    s = CosineSchedule(1.0, total_steps=14, warmup_steps=4, min_lr=0.1)
    np.testing.assert_allclose([s.lr_at(k) for k in range(4)], [0.25, 0.5, 0.75, 1.0])
    assert s.lr_at(4) == 1.0
    assert s.lr_at(9) == pytest.approx(0.1 + 0.9 * 0.5)  # half way through the decay
    assert s.lr_at(14) == pytest.approx(0.1) and s.lr_at(1000) == pytest.approx(0.1)
    decay = [s.lr_at(k) for k in range(4, 15)]
    assert all(a > b for a, b in zip(decay, decay[1:], strict=False))


def test_make_schedule_builds_each_kind_and_constant_is_constant():
    assert isinstance(make_schedule("constant", 0.1), ConstantSchedule)
    assert {make_schedule("constant", 0.1).lr_at(k) for k in range(50)} == {0.1}
    assert make_schedule("step", 1.0, step_size=2, gamma=0.1).lr_at(4) == pytest.approx(0.01)
    assert make_schedule("cosine", 1.0, total_steps=10).lr_at(10) == 0.0
    with pytest.raises(InvalidInput, match=r"^name: "):
        make_schedule("linear", 0.1)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: StepSchedule(0.1, step_size=0), "step_size"),
        (lambda: StepSchedule(0.1, step_size=2, gamma=-1), "gamma"),
        (lambda: CosineSchedule(0.1, total_steps=5, warmup_steps=6), "warmup_steps"),
        (lambda: CosineSchedule(0.1, total_steps=5, min_lr=0.2), "min_lr"),
        (lambda: CosineSchedule(-0.1, total_steps=5), "base_lr"),
        (lambda: ConstantSchedule(0.1).lr_at(-1), "step"),
    ],
)
def test_schedule_bad_arguments_are_named(call, name):
    with pytest.raises(InvalidInput, match=rf"^{name}: "):
        call()


# ---------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("cls", "kwargs", "name"),
    [
        (SGD, {"lr": -1}, "lr"),
        (SGD, {"lr": float("nan")}, "lr"),
        (SGD, {"momentum": -0.1}, "momentum"),
        (SGD, {"weight_decay": -1}, "weight_decay"),
        (SGD, {"nesterov": True}, "nesterov"),  # needs momentum
        (SGD, {"momentum": 0.9, "dampening": 0.1, "nesterov": True}, "nesterov"),
        (Adam, {"betas": (1.0, 0.999)}, r"betas\[0\]"),
        (Adam, {"betas": (0.9, -0.1)}, r"betas\[1\]"),
        (Adam, {"betas": 0.9}, "betas"),
        (Adam, {"eps": -1e-8}, "eps"),
        (AdamW, {"weight_decay": -0.01}, "weight_decay"),
        (Adam, {"amsgrad": "yes"}, "amsgrad"),
        (Adagrad, {"lr_decay": -1}, "lr_decay"),
        (Adagrad, {"initial_accumulator_value": -1}, "initial_accumulator_value"),
        (Adagrad, {"eps": -1}, "eps"),
    ],
)
def test_invalid_hyperparameters_are_rejected_naming_the_argument(cls, kwargs, name):
    with pytest.raises(InvalidInput, match=rf"^{name}: "):
        cls({"w": np.zeros(2)}, **kwargs)


def test_invalid_params_and_grads_are_rejected():
    with pytest.raises(InvalidInput, match=r"^params: "):
        Adam({})
    with pytest.raises(InvalidInput, match=r"^params\['w'\]: "):
        Adam({"w": np.zeros(2, dtype=np.int64)})
    opt = Adam({"w": np.zeros(2), "b": np.zeros(1)})
    with pytest.raises(InvalidInput, match=r"^grads: .*missing \['b'\]"):
        opt.step({"w": np.zeros(2)})
    with pytest.raises(InvalidInput, match=r"^grads\['b'\]: expected a float array of shape \(1,\)"):
        opt.step({"w": np.zeros(2), "b": np.zeros(3)})
    assert opt.step_count == 0  # nothing happened
