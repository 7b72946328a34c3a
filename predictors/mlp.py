"""A torch multi-layer perceptron regressor with early stopping and FBNetV3-style pretraining."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_array, check_is_fitted, validate_data
from torch import nn

from predictors._base import LearnedState, TargetScaler, seed_from

AUTO_MIN_VALIDATION = 50
SMOOTHING = 5  # epochs averaged in the early-stopping criterion


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    """Temporarily set torch's intra-op thread count."""
    if n is None:
        yield
        return
    if int(n) < 1:
        raise ValueError(f"n_threads must be >= 1 or None; got {n}")
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _build(n_in: int, hidden: Sequence[int], dropout: float, n_out: int) -> nn.Sequential:
    """Trunk of Linear-ReLU(-Dropout) layers followed by a linear head (the last module)."""
    layers: list[nn.Module] = []
    width = n_in
    for h in hidden:
        layers += [nn.Linear(width, int(h)), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = int(h)
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


def _epochs(
    net: nn.Sequential,
    X: torch.Tensor,
    Y: torch.Tensor,
    train: np.ndarray,
    *,
    lr: float,
    weight_decay: float,
    batch_size: int,
    epochs: int,
    rng: np.random.Generator,
    val: np.ndarray | None = None,
    patience: int = 0,
) -> tuple[int, float]:
    """AdamW on MSE over ``train`` rows for up to ``epochs`` epochs.

    With ``val`` rows, the criterion is the validation loss averaged over the last
    :data:`SMOOTHING` epochs (one lucky epoch early in training must not win); training stops
    after ``patience`` epochs without a better criterion and restores the weights of the best
    epoch. Returns (best epoch, its criterion) or, without ``val``, (epochs, last training loss).
    """
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    bs = max(1, min(batch_size, len(train)))
    best, best_epoch, best_state = np.inf, 0, None
    recent: list[float] = []
    for epoch in range(1, epochs + 1):
        net.train()
        total = 0.0
        order = torch.from_numpy(rng.permutation(train))
        for start in range(0, len(train), bs):
            idx = order[start : start + bs]
            opt.zero_grad()
            loss = torch.mean((net(X[idx]) - Y[idx]) ** 2)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        if val is None:
            best, best_epoch = total / len(train), epoch
            continue
        net.eval()
        with torch.no_grad():
            recent = [*recent[-(SMOOTHING - 1):], float(torch.mean((net(X[val]) - Y[val]) ** 2))]
        criterion = float(np.mean(recent))
        if criterion < best - 1e-6:
            best, best_epoch = criterion, epoch
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        elif epoch - best_epoch >= patience:
            break
    if best_state is not None:
        net.load_state_dict(best_state)
    return best_epoch, float(best)


class MLPPredictor(RegressorMixin, BaseEstimator):
    """MLP regressor (torch, CPU) on max-abs scaled inputs and a standardised target.

    Training is AdamW on MSE. With early stopping, ``validation_fraction`` of the samples are held
    out and training stops after ``patience`` epochs without a better validation loss; with
    ``refit`` the network is then retrained from the same initial weights on all samples for the
    best number of epochs (few samples are too precious to leave out), otherwise the best weights
    are kept. ``early_stopping="auto"`` turns it on only when the held-out split has at least
    ``AUTO_MIN_VALIDATION`` (50) samples: on NAS-Bench-201, a smaller split's MSE picks far too few
    epochs and costs rank correlation (see ``results/benchmarks/predictors.md``); below that, the
    network trains for ``max_epochs``.

    ``fit(X, y, X_pretrain=U, y_pretrain=S)`` first trains the network to predict free statistics
    ``S`` (FLOPs, params, ...; shape (m, k), standardised per column) of many unmeasured
    architectures ``U``, then replaces the output layer and fine-tunes all weights on the measured
    target (FBNetV3). Seeded by ``random_state``; torch's global random state is left untouched.
    ``n_threads`` caps torch's intra-op threads while fitting and predicting (restored after;
    ``None`` leaves torch's setting): a network this small runs fastest on one thread, and far
    slower on a busy machine with several.
    """

    def __init__(
        self,
        *,
        hidden_layer_sizes: tuple[int, ...] = (128, 128),
        dropout: float = 0.0,
        learning_rate: float = 3e-3,
        weight_decay: float = 1e-4,
        batch_size: int = 128,
        max_epochs: int = 200,
        early_stopping: bool | str = "auto",
        validation_fraction: float = 0.1,
        patience: int = 50,
        refit: bool = True,
        pretrain_epochs: int = 30,
        pretrain_batch_size: int = 256,
        n_threads: int | None = 1,
        random_state: int | np.random.Generator | None = None,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.refit = refit
        self.pretrain_epochs = pretrain_epochs
        self.pretrain_batch_size = pretrain_batch_size
        self.n_threads = n_threads
        self.random_state = random_state

    def _check_params(self) -> None:
        if not 0.0 < self.validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must be in (0, 1); got {self.validation_fraction}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1); got {self.dropout}")
        for name in ("batch_size", "max_epochs", "patience", "pretrain_batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)}")
        if int(self.pretrain_epochs) < 0:
            raise ValueError(f"pretrain_epochs must be >= 0; got {self.pretrain_epochs}")
        if len(self.hidden_layer_sizes) == 0 or any(int(h) < 1 for h in self.hidden_layer_sizes):
            raise ValueError(f"hidden_layer_sizes must be positive ints; got {self.hidden_layer_sizes}")

    def _split(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
        order = rng.permutation(n)
        n_val = round(self.validation_fraction * n)
        if self.early_stopping == "auto":
            enabled = n_val >= AUTO_MIN_VALIDATION
        elif isinstance(self.early_stopping, (bool, np.bool_)):
            enabled = bool(self.early_stopping)
        else:
            raise ValueError(f"early_stopping must be True, False or 'auto'; got {self.early_stopping!r}")
        if not enabled or n_val < 2 or n - n_val < 2:
            return order, None
        return order[n_val:], order[:n_val]

    def fit(self, X, y, X_pretrain=None, y_pretrain=None) -> MLPPredictor:
        """Fit on (X, y); with ``X_pretrain``/``y_pretrain``, pretrain on those statistics first."""
        with _threads(self.n_threads):
            return self._fit(X, y, X_pretrain, y_pretrain)

    def _fit(self, X, y, X_pretrain, y_pretrain) -> MLPPredictor:
        self._check_params()
        X, y = validate_data(self, X, y, y_numeric=True, dtype=np.float64)
        if (X_pretrain is None) != (y_pretrain is None):
            raise ValueError("give both X_pretrain and y_pretrain, or neither")
        if X_pretrain is not None:
            X_pretrain = check_array(X_pretrain, dtype=np.float64)
            S = check_array(np.asarray(y_pretrain, dtype=np.float64).reshape(len(X_pretrain), -1))
            if X_pretrain.shape[1] != X.shape[1]:
                raise ValueError(f"X_pretrain has {X_pretrain.shape[1]} features; X has {X.shape[1]}")
        seed = seed_from(self.random_state)
        rng = np.random.default_rng(seed)
        pool = X if X_pretrain is None else np.vstack([X, X_pretrain])
        # Max-abs scaling keeps one-hot columns 0/1 (standardising rare columns blows them up).
        peak = np.abs(pool).max(axis=0)
        self.x_scale_ = np.where(peak > 1e-12, peak, 1.0)
        scaler = TargetScaler.fit(y)
        self.y_mean_, self.y_scale_ = scaler.mean, scaler.scale
        hidden = tuple(int(h) for h in self.hidden_layer_sizes)
        opt = dict(lr=self.learning_rate, weight_decay=self.weight_decay, rng=rng)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.pretrained_ = X_pretrain is not None
            if X_pretrain is not None:
                S = (S - S.mean(axis=0)) / np.where(S.std(axis=0) > 1e-12, S.std(axis=0), 1.0)
                net = _build(X.shape[1], hidden, self.dropout, S.shape[1])
                train, val = self._split(len(X_pretrain), rng)
                if self.pretrain_epochs > 0:
                    _epochs(net, self._tensor(X_pretrain), torch.from_numpy(S).float(), train,
                            val=val, patience=self.patience, epochs=self.pretrain_epochs,
                            batch_size=self.pretrain_batch_size, **opt)
                net[-1] = nn.Linear(net[-1].in_features, 1)  # a fresh head for the target
            else:
                net = _build(X.shape[1], hidden, self.dropout, 1)
            start = copy.deepcopy(net.state_dict())
            Xt = self._tensor(X)
            z = torch.from_numpy(scaler.transform(y)).float()[:, None]
            train, val = self._split(len(X), rng)
            fine = dict(batch_size=self.batch_size, **opt)
            best_epoch, _ = _epochs(net, Xt, z, train, val=val, patience=self.patience,
                                    epochs=self.max_epochs, **fine)
            self.best_epoch_ = best_epoch
            if val is not None and self.refit:
                net.load_state_dict(start)
                _epochs(net, Xt, z, np.arange(len(X)), epochs=max(best_epoch, 1), **fine)
        net.eval()
        self.net_ = net
        return self

    def _tensor(self, X: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(X / self.x_scale_).float()

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        self.net_.eval()
        with _threads(self.n_threads), torch.no_grad():
            z = self.net_(self._tensor(X))[:, 0].double().numpy()
        return z * self.y_scale_ + self.y_mean_

    def _get_state(self) -> LearnedState:
        arrays = {f"net.{k}": v.detach().cpu().numpy() for k, v in self.net_.state_dict().items()}
        arrays["x_scale_"] = self.x_scale_
        meta = {"y_mean_": self.y_mean_, "y_scale_": self.y_scale_,
                "best_epoch_": self.best_epoch_, "pretrained_": self.pretrained_}
        return LearnedState(meta=meta, arrays=arrays)

    def _set_state(self, state: LearnedState) -> None:
        self._check_params()
        hidden = tuple(int(h) for h in self.hidden_layer_sizes)
        net = _build(int(self.n_features_in_), hidden, self.dropout, 1)
        weights = {k[len("net."):]: torch.from_numpy(np.array(v))
                   for k, v in state.arrays.items() if k.startswith("net.")}
        net.load_state_dict(weights, strict=True)  # raises on a missing or misshapen tensor
        net.eval()
        self.net_ = net
        self.x_scale_ = np.asarray(state.arrays["x_scale_"], dtype=np.float64)
        self.y_mean_ = float(state.meta["y_mean_"])
        self.y_scale_ = float(state.meta["y_scale_"])
        self.best_epoch_ = int(state.meta["best_epoch_"])
        self.pretrained_ = bool(state.meta["pretrained_"])
