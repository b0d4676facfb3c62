"""Customer lifetime value: RFM summaries, BG/NBD, Pareto/NBD, Gamma-Gamma and discounted CLV.

The buy-till-you-die models of Fader & Hardie for non-contractual settings, fitted by maximum
likelihood with scipy. Time is measured in days or weeks from each customer's first purchase;
purchases are counted once per customer and day, as in the papers' CDNOW data.
"""

from __future__ import annotations

import csv
import gzip
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, TypeAlias

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize
from scipy.special import betaln, expit, gammaln, hyp2f1

from jingzhun.core import IngestError, NotFoundError

FloatArray = NDArray[np.float64]
DateLike: TypeAlias = date | datetime | str | pd.Timestamp

DAYS_PER_MONTH = 365.25 / 12
"""Length of the CLV discounting period (an average calendar month), in days."""

_YYYYMMDD = re.compile(r"^\d{8}$")


class TimeUnit(StrEnum):
    """The unit in which recency, T and model time are measured."""

    DAY = "day"
    WEEK = "week"

    @property
    def days(self) -> int:
        """Days in one unit."""
        return 7 if self is TimeUnit.WEEK else 1


class Separator(StrEnum):
    """How the fields of a text file are separated."""

    AUTO = "auto"
    COMMA = "comma"
    TAB = "tab"
    SEMICOLON = "semicolon"
    WHITESPACE = "whitespace"


_SEPARATORS = {
    Separator.COMMA: ",",
    Separator.TAB: "\t",
    Separator.SEMICOLON: ";",
    Separator.WHITESPACE: r"\s+",
}


# --------------------------------------------------------------------------- reading


def read_transactions(
    path: Path,
    *,
    customer_col: str,
    date_col: str,
    amount_col: str | None = None,
    columns: Sequence[str] | None = None,
    header: bool | None = None,
    sep: Separator | str = Separator.AUTO,
    date_format: str | None = None,
) -> pd.DataFrame:
    """Read a transaction file into ``customer_col``, ``date_col`` (datetime) and ``amount_col``.

    Reads CSV (also ``.csv.gz``), Parquet and whitespace-separated text such as Fader &
    Hardie's ``CDNOW_master.txt``. Dates may be ISO 8601 or ``YYYYMMDD``.

    Parameters
    ----------
    columns
        Names for the file's columns, in order, for files without a header (or to rename a
        header's columns).
    header
        Whether the first line is a header. ``None``: yes, unless ``columns`` is given and the
        first line's date field already parses as a date.
    sep
        A :class:`Separator`; ``auto`` picks tab, semicolon or comma from the first line,
        else whitespace, and comma for ``.csv`` files.
    date_format
        A ``strptime`` format for the dates (default: ``YYYYMMDD`` when every date has eight
        digits, else ISO 8601).

    Raises
    ------
    NotFoundError
        The file does not exist.
    IngestError
        The file is unreadable, lacks a named column, or a row has an empty
        customer, an unparsable date or a negative or non-numeric amount; the message names
        the file, the row (the line in a text file) and the column.
    """
    path = Path(path)
    if not path.is_file():
        if not path.exists():
            raise NotFoundError(f"{path}: the transactions file does not exist")
        raise IngestError(path, "not a file")
    wanted = [customer_col, date_col, *([amount_col] if amount_col else [])]
    if _is_parquet(path):
        frame = _read_parquet(path, columns)
        first_row = 1
    else:
        frame, first_row = _read_text(path, columns, header, Separator(sep), date_col, date_format)
    missing = [name for name in wanted if name not in frame.columns]
    if missing:
        raise IngestError(
            path,
            f"no column '{missing[0]}'; the file has {list(map(str, frame.columns))}",
            column=missing[0],
            hint="name the columns with --customer-col/--date-col/--amount-col, "
            "or give the file's columns with --columns",
        )
    return _clean_transactions(
        frame[wanted].reset_index(drop=True),
        path,
        first_row=first_row,
        customer_col=customer_col,
        date_col=date_col,
        amount_col=amount_col,
        date_format=date_format,
    )


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in {".parquet", ".pq"}


def _read_parquet(path: Path, columns: Sequence[str] | None) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a broken file
        raise IngestError(path, f"cannot read the Parquet file: {exc}") from None
    if columns:
        if len(columns) != len(frame.columns):
            raise IngestError(
                path,
                f"--columns names {len(columns)} column(s), the file has {len(frame.columns)}",
            )
        frame.columns = list(columns)
    return frame


def _first_line(path: Path) -> str:
    opener: Callable[..., Any] = gzip.open if path.suffix.lower() == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", newline="") as handle:
            line: str = handle.readline()
    except (OSError, UnicodeDecodeError) as exc:
        raise IngestError(path, f"cannot read the file: {exc}", hint="save it as UTF-8") from None
    if not line.strip():
        raise IngestError(path, "the file is empty or starts with a blank line")
    return line.rstrip("\r\n")


def _pick_separator(path: Path, line: str, sep: Separator) -> Separator:
    if sep is not Separator.AUTO:
        return sep
    for candidate, char in ((Separator.TAB, "\t"), (Separator.SEMICOLON, ";")):
        if char in line:
            return candidate
    name = path.name.lower()
    if "," in line or name.endswith((".csv", ".csv.gz")):
        return Separator.COMMA
    return Separator.WHITESPACE


def _split(line: str, sep: Separator) -> list[str]:
    if sep is Separator.WHITESPACE:
        return line.split()
    return [field.strip() for field in next(csv.reader([line], delimiter=_SEPARATORS[sep]))]


def _read_text(
    path: Path,
    columns: Sequence[str] | None,
    header: bool | None,
    sep: Separator,
    date_col: str,
    date_format: str | None,
) -> tuple[pd.DataFrame, int]:
    """The file as strings, and the line number of its first data row."""
    line = _first_line(path)
    sep = _pick_separator(path, line, sep)
    fields = _split(line, sep)
    names = list(columns) if columns else None
    if names and len(names) != len(fields):
        raise IngestError(
            path,
            f"--columns names {len(names)} column(s), but the first line has {len(fields)}",
            row=1,
        )
    if header is None:
        header = True
        if names and date_col in names:
            header = _parse_one_date(fields[names.index(date_col)], date_format) is None
    if not header and names is None:
        raise IngestError(
            path,
            "the file has no header line, so its columns need names",
            hint="give them with --columns, e.g. --columns customer_id,date,quantity,amount",
        )
    try:
        frame = pd.read_csv(
            path,
            sep=_SEPARATORS[sep],
            header=0 if header else None,
            names=names,
            index_col=False,
            dtype=str,
            keep_default_na=False,
            skipinitialspace=True,
            encoding="utf-8-sig",
        )
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        message = str(exc).strip().splitlines()[-1]
        raise IngestError(
            path,
            f"cannot read the file: {message}",
            hint="check the separator (--sep) and that every line has the same fields",
        ) from None
    if names is None:
        frame.columns = [str(name).strip() for name in frame.columns]
    elif len(frame.columns) != len(names):
        raise IngestError(path, f"--columns names {len(names)} column(s), the file has more")
    return frame, 2 if header else 1


def _parse_one_date(text: str, date_format: str | None) -> pd.Timestamp | None:
    text = text.strip()
    fmt = date_format or ("%Y%m%d" if _YYYYMMDD.match(text) else "ISO8601")
    try:
        value = pd.to_datetime(text, format=fmt)
    except (ValueError, TypeError):
        return None
    return None if pd.isna(value) else pd.Timestamp(value)


def _clean_transactions(
    frame: pd.DataFrame,
    path: Path,
    *,
    first_row: int,
    customer_col: str,
    date_col: str,
    amount_col: str | None,
    date_format: str | None,
) -> pd.DataFrame:
    """Types and checks; the first bad value raises naming its row (``first_row`` + index)."""
    if frame.empty:
        raise IngestError(path, "the file has no transactions")

    def fail(index: int, column: str, message: str, hint: str = "") -> IngestError:
        return IngestError(path, message, row=first_row + int(index), column=column, hint=hint)

    customers = frame[customer_col]
    empty = customers.isna() | (customers.astype(str).str.strip() == "")
    if empty.any():
        raise fail(int(np.argmax(empty.to_numpy())), customer_col, "the customer id is empty")
    if not pd.api.types.is_numeric_dtype(customers):
        frame[customer_col] = customers.astype(str).str.strip()
    frame[date_col] = _parse_dates(frame[date_col], date_format, fail, date_col)
    if amount_col:
        raw = frame[amount_col]
        numeric = pd.api.types.is_numeric_dtype(raw)
        amounts = pd.to_numeric(raw if numeric else raw.str.strip(), errors="coerce").astype(float)
        bad = amounts.isna().to_numpy()
        if bad.any():
            at = int(np.argmax(bad))
            raise fail(
                at, amount_col, f"'{raw.iloc[at]}' is not a number: expected an amount like 12.50"
            )
        negative = (amounts < 0).to_numpy()
        if negative.any():
            at = int(np.argmax(negative))
            raise fail(
                at,
                amount_col,
                f"negative amount {amounts.iloc[at]}: expected purchases of 0 or more",
                hint="leave returns and refunds out of the transactions",
            )
        frame[amount_col] = amounts
    return frame


def _parse_dates(
    values: pd.Series,
    date_format: str | None,
    fail: Callable[..., IngestError],
    column: str,
) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values
        if getattr(parsed.dt, "tz", None) is not None:
            parsed = parsed.dt.tz_localize(None)  # keep the wall-clock day of the purchase
        bad = parsed.isna().to_numpy()
        if bad.any():
            raise fail(int(np.argmax(bad)), column, "the date is empty")
        return parsed.astype("datetime64[ns]")
    text = values.astype(str).str.strip()
    if date_format is None:
        date_format = "%Y%m%d" if text.str.fullmatch(r"\d{8}").all() else "ISO8601"
    try:
        parsed = pd.to_datetime(text, format=date_format, errors="coerce")
    except ValueError:  # mixed UTC offsets: compare them on one clock
        parsed = pd.to_datetime(text, format=date_format, errors="coerce", utc=True)
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_localize(None)
    bad = parsed.isna().to_numpy()
    if bad.any():
        at = int(np.argmax(bad))
        shown = {"%Y%m%d": "YYYYMMDD, e.g. 20240131", "ISO8601": "a date like 2024-01-31"}.get(
            date_format, f"the format {date_format}"
        )
        raise fail(
            at,
            column,
            f"'{text.iloc[at]}' is not a date: expected {shown}",
            hint="give the format with --date-format, e.g. %d/%m/%Y",
        )
    return parsed.astype("datetime64[ns]")


# --------------------------------------------------------------------------- RFM summary


def _as_day(value: DateLike) -> pd.Timestamp:
    return pd.Timestamp(value).tz_localize(None).normalize()


def rfm_summary(
    transactions: pd.DataFrame,
    *,
    customer_col: str,
    date_col: str,
    amount_col: str | None = None,
    calibration_end: DateLike | None = None,
    observation_end: DateLike | None = None,
    time_unit: TimeUnit | str = TimeUnit.WEEK,
) -> pd.DataFrame:
    """One row per customer: frequency, recency, T (and monetary value, holdout counts).

    Conventions of Fader, Hardie & Lee (2005): purchases are counted once per customer and
    day (same-day amounts summed); ``frequency`` is the number of repeat purchase days in the
    calibration period; ``recency`` (t_x) is the time from the first to the last purchase;
    ``T`` the time from the first purchase to ``calibration_end``, which itself belongs to the
    calibration period. Customers whose first purchase is after ``calibration_end`` are left
    out. ``monetary_value`` is the mean amount of the repeat purchase days (Gamma-Gamma's
    z-bar; 0 without repeats).

    Parameters
    ----------
    calibration_end
        Last day of the calibration period (default: the last purchase day).
    observation_end
        Last day of the holdout period (default: the last purchase day). When it is after
        ``calibration_end``, the columns ``frequency_holdout`` (purchase days in the holdout),
        ``monetary_holdout`` (their mean amount, 0 without) and ``duration_holdout`` are added.
    time_unit
        ``week`` (days / 7) or ``day``.

    Returns
    -------
    pandas.DataFrame
        Indexed by customer, sorted: ``first_purchase`` (the day) and the columns above.
    """
    unit = TimeUnit(time_unit)
    for name in (customer_col, date_col, *([amount_col] if amount_col else [])):
        if name not in transactions.columns:
            raise KeyError(f"transactions have no column '{name}'")
    days = pd.to_datetime(transactions[date_col])
    if getattr(days.dt, "tz", None) is not None:
        days = days.dt.tz_localize(None)
    frame = pd.DataFrame(
        {
            "customer": transactions[customer_col].to_numpy(),
            "day": days.dt.normalize().to_numpy(),
            "amount": (transactions[amount_col].astype(float).to_numpy() if amount_col else 0.0),
        }
    )
    if frame.empty:
        raise ValueError("no transactions to summarise")
    last_day = frame["day"].max()
    cal_end = _as_day(calibration_end) if calibration_end is not None else last_day
    obs_end = _as_day(observation_end) if observation_end is not None else max(last_day, cal_end)
    if obs_end < cal_end:
        raise ValueError(
            f"observation_end {obs_end.date()} is before calibration_end {cal_end.date()}"
        )
    # One purchase per customer and day: FHL (2005) count "transactions" at the day level.
    purchases = frame.groupby(["customer", "day"], as_index=False, sort=True)["amount"].sum()
    first = purchases.groupby("customer")["day"].min()
    purchases = purchases[purchases["customer"].map(first) <= cal_end]
    if purchases.empty:
        raise ValueError(f"no customer made a first purchase by {cal_end.date()}")
    purchases = purchases.assign(first=purchases["customer"].map(first))
    calibration = purchases[purchases["day"] <= cal_end]
    repeats = calibration[calibration["day"] > calibration["first"]]
    grouped = calibration.groupby("customer", sort=True)
    first_day = grouped["day"].min()
    summary = pd.DataFrame(index=first_day.index)
    summary.index.name = customer_col
    summary["first_purchase"] = first_day
    summary["frequency"] = (grouped.size() - 1).astype(np.int64)
    summary["recency"] = (grouped["day"].max() - first_day).dt.days / unit.days
    summary["T"] = (cal_end - first_day).dt.days / unit.days
    if amount_col:
        mean_repeat = repeats.groupby("customer")["amount"].mean()
        summary["monetary_value"] = mean_repeat.reindex(summary.index).fillna(0.0).to_numpy()
    if obs_end > cal_end:
        holdout = purchases[(purchases["day"] > cal_end) & (purchases["day"] <= obs_end)]
        counts = holdout.groupby("customer").size()
        summary["frequency_holdout"] = counts.reindex(summary.index).fillna(0).astype(np.int64)
        if amount_col:
            mean_holdout = holdout.groupby("customer")["amount"].mean()
            summary["monetary_holdout"] = mean_holdout.reindex(summary.index).fillna(0.0)
        summary["duration_holdout"] = (obs_end - cal_end).days / unit.days
    # Plain text, so the frame still writes to Parquet (which stores attrs as JSON).
    summary.attrs.update(
        calibration_end=cal_end.date().isoformat(),
        observation_end=obs_end.date().isoformat(),
        time_unit=unit.value,
    )
    return summary


# --------------------------------------------------------------------------- fitting


def _float_array(values: ArrayLike) -> FloatArray:
    return np.asarray(values, dtype=np.float64)


def _check_rfm(frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> tuple[FloatArray, ...]:
    x, t_x, age = np.broadcast_arrays(
        _float_array(frequency), _float_array(recency), _float_array(T)
    )
    if np.any(x < 0) or np.any(x != np.floor(x)):
        raise ValueError("frequency must be whole numbers of 0 or more")
    if np.any(t_x < 0) or np.any(t_x > age + 1e-9):
        raise ValueError("recency must be between 0 and T")
    if np.any((x == 0) & (t_x > 0)):
        raise ValueError("recency must be 0 for customers without repeat purchases")
    return x, t_x, age


def _distinct_rows(
    frequency: ArrayLike, recency: ArrayLike, T: ArrayLike, sample_weight: ArrayLike | None
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """The distinct (x, t_x, T) rows and the customers sharing each: one likelihood per row."""
    x, t_x, age = _check_rfm(frequency, recency, T)
    weights = np.ones_like(x) if sample_weight is None else _float_array(sample_weight)
    table = pd.DataFrame({"x": x, "t_x": t_x, "T": age, "w": np.broadcast_to(weights, x.shape)})
    table = table.groupby(["x", "t_x", "T"], as_index=False, sort=False)["w"].sum()
    x, t_x, age, weights = (table[c].to_numpy(dtype=np.float64) for c in ("x", "t_x", "T", "w"))
    return x, t_x, age, weights


def _maximise(
    log_likelihood: Callable[[FloatArray], FloatArray],
    names: Sequence[str],
    weights: FloatArray,
    initial: Sequence[float] | None,
    max_iter: int,
) -> tuple[dict[str, float], float, bool]:
    """Maximum likelihood over log-parameters: L-BFGS-B, then Nelder-Mead to polish."""
    total = float(weights.sum())

    def objective(log_params: FloatArray) -> float:
        with np.errstate(all="ignore"):
            value = -float(np.sum(weights * log_likelihood(np.exp(log_params)))) / total
        return value if np.isfinite(value) else 1e100

    start = np.log(np.asarray(initial if initial is not None else [1.0] * len(names)))
    coarse = minimize(objective, start, method="L-BFGS-B", options={"maxiter": max_iter})
    fine = minimize(
        objective,
        coarse.x,
        method="Nelder-Mead",
        options={"maxiter": max_iter, "xatol": 1e-10, "fatol": 1e-13},
    )
    best = fine if fine.fun <= coarse.fun else coarse
    params = dict(zip(names, np.exp(best.x).tolist(), strict=True))
    return params, -float(best.fun) * total, bool(fine.success or coarse.success)


class _FittedModel:
    """Shared checks of the fitted models."""

    params_: dict[str, float]
    log_likelihood_: float
    converged_: bool
    n_customers_: float

    def _params(self, *names: str) -> tuple[float, ...]:
        if not hasattr(self, "params_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted yet: call fit() first")
        return tuple(self.params_[name] for name in names)


class BetaGeoModel(_FittedModel):
    """BG/NBD: Poisson purchases while alive, a coin flip after each purchase to drop out.

    Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way: An Alternative to the
    Pareto/NBD Model", Marketing Science 24(2). Heterogeneity: purchase rate ~ Gamma(r, alpha),
    drop-out probability ~ Beta(a, b).

    Parameters
    ----------
    initial_params
        Starting values for (r, alpha, a, b); default all 1.
    max_iter
        Iteration limit of each optimiser pass.

    Attributes
    ----------
    params_ : dict
        ``r``, ``alpha``, ``a``, ``b``.
    log_likelihood_ : float
        Sum of the customers' log-likelihoods at ``params_``.
    n_customers_ : float
        Customers fitted (sum of the weights).
    converged_ : bool
        Whether the optimiser reported success.
    """

    param_names = ("r", "alpha", "a", "b")

    def __init__(self, initial_params: Sequence[float] | None = None, max_iter: int = 5000):
        self.initial_params = initial_params
        self.max_iter = max_iter

    @staticmethod
    def _log_likelihood(
        params: FloatArray, x: FloatArray, t_x: FloatArray, T: FloatArray
    ) -> FloatArray:
        r, alpha, a, b = params
        # FHL (2005) eq. 6, in the log form of Fader, Hardie & Lee's note "Implementing the
        # BG/NBD Model for Customer Base Analysis in Excel" (2005): ln(A1 A2 (A3 + δ A4)).
        ln_a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
        ln_a2 = betaln(a, b + x) - betaln(a, b)
        ln_a3 = -(r + x) * np.log(alpha + T)
        repeat = x > 0
        safe_x = np.where(repeat, x, 1.0)
        ln_a4 = np.where(
            repeat,
            # B(a+1, b+x-1) / B(a, b+x) = a / (b+x-1)
            np.log(a) - np.log(b + safe_x - 1) - (r + safe_x) * np.log(alpha + t_x),
            -np.inf,
        )
        return np.asarray(ln_a1 + ln_a2 + np.logaddexp(ln_a3, ln_a4), dtype=np.float64)

    def fit(
        self,
        frequency: ArrayLike,
        recency: ArrayLike,
        T: ArrayLike,
        sample_weight: ArrayLike | None = None,
    ) -> BetaGeoModel:
        """Fit by maximum likelihood on (x, t_x, T) per customer.

        Parameters
        ----------
        sample_weight
            Customers sharing each row, to fit on a compressed table.
        """
        x, t_x, age, weights = _distinct_rows(frequency, recency, T, sample_weight)
        self.params_, self.log_likelihood_, self.converged_ = _maximise(
            lambda p: self._log_likelihood(p, x, t_x, age),
            self.param_names,
            weights,
            self.initial_params,
            self.max_iter,
        )
        self.n_customers_ = float(weights.sum())
        return self

    def log_likelihood(self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> FloatArray:
        """Each customer's log-likelihood under the fitted parameters (eq. 6)."""
        params = np.asarray(self._params(*self.param_names))
        return self._log_likelihood(params, *_check_rfm(frequency, recency, T))

    def _log_odds_dead(self, x: FloatArray, t_x: FloatArray, T: FloatArray) -> FloatArray:
        r, alpha, a, b = self._params(*self.param_names)
        repeat = x > 0
        safe_x = np.where(repeat, x, 1.0)
        odds = (
            np.log(a)
            - np.log(b + safe_x - 1)
            + (r + safe_x) * (np.log(alpha + T) - np.log(alpha + t_x))
        )
        return np.where(repeat, odds, -np.inf)

    def expected_probability_alive(
        self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """P(alive | x, t_x, T), from Fader, Hardie & Lee's note 021 "Computing P(alive)".

        ``1 / (1 + δ(x>0) a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x))``; 1 for customers who never
        bought again (under BG/NBD a customer can only drop out right after a purchase).
        """
        x, t_x, age = _check_rfm(frequency, recency, T)
        return np.asarray(expit(-self._log_odds_dead(x, t_x, age)), dtype=np.float64)

    def expected_purchases(
        self, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """E[Y(t) | x, t_x, T]: expected purchases in the next ``t`` units (FHL 2005 eq. 10)."""
        x, t_x, age = _check_rfm(frequency, recency, T)
        horizon = _float_array(t)
        r, alpha, a, b = self._params(*self.param_names)
        z = horizon / (alpha + age + horizon)
        # Eq. 10's ((α+T)/(α+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; z) rewritten with Euler's
        # transformation (Abramowitz & Stegun 15.3.3) as (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z):
        # the same value, but no overflow for customers with many purchases.
        tail = (1 - z) ** (a - 1) * hyp2f1(a + b - 1 - r, a - 1, a + b + x - 1, z)
        alive = expit(-self._log_odds_dead(x, t_x, age))
        return np.asarray((a + b + x - 1) / (a - 1) * (1 - tail) * alive, dtype=np.float64)

    def expected_purchases_new_customer(self, t: ArrayLike) -> FloatArray:
        """E[X(t)]: expected purchases of a new customer in ``t`` units after the first (eq. 7)."""
        horizon = _float_array(t)
        r, alpha, a, b = self._params(*self.param_names)
        z = horizon / (alpha + horizon)
        # (α/(α+t))^r 2F1(r, b; a+b-1; z), after Euler's transformation as in eq. 10.
        tail = (1 - z) ** (a - 1) * hyp2f1(a + b - 1 - r, a - 1, a + b - 1, z)
        return np.asarray((a + b - 1) / (a - 1) * (1 - tail), dtype=np.float64)


class ParetoNBDModel(_FittedModel):
    """Pareto/NBD: Poisson purchases, exponential lifetime (Schmittlein, Morrison & Colombo 1987).

    Purchase rate ~ Gamma(r, alpha), drop-out rate ~ Gamma(s, beta). Likelihood and P(alive)
    as in Fader & Hardie (2005) note 009 "A Note on Deriving the Pareto/NBD Model and Related
    Expressions", in the log-sum-exp form of CLVTools and lifetimes.

    Parameters
    ----------
    initial_params
        Starting values for (r, alpha, s, beta); default all 1.
    max_iter
        Iteration limit of each optimiser pass.

    Attributes
    ----------
    params_ : dict
        ``r``, ``alpha``, ``s``, ``beta``.
    log_likelihood_ : float
        Sum of the customers' log-likelihoods at ``params_``.
    n_customers_ : float
        Customers fitted (sum of the weights).
    converged_ : bool
        Whether the optimiser reported success.
    """

    param_names = ("r", "alpha", "s", "beta")

    def __init__(self, initial_params: Sequence[float] | None = None, max_iter: int = 5000):
        self.initial_params = initial_params
        self.max_iter = max_iter

    @staticmethod
    def _log_a0(params: FloatArray, x: FloatArray, t_x: FloatArray, T: FloatArray) -> FloatArray:
        """Log of note 009's A0: the integral over a drop-out time between t_x and T."""
        r, alpha, s, beta = params
        rsx = r + s + x
        if alpha >= beta:
            high, second = alpha, s + 1
        else:
            high, second = beta, r + x
        gap = abs(alpha - beta)
        ln_recency = np.log(hyp2f1(rsx, second, rsx + 1, gap / (high + t_x))) - rsx * np.log(
            high + t_x
        )
        ln_age = np.log(hyp2f1(rsx, second, rsx + 1, gap / (high + T))) - rsx * np.log(high + T)
        # A0 = e^ln_recency - e^ln_age >= 0 (t_x <= T); log1p keeps the small differences.
        return np.asarray(ln_recency + np.log1p(-np.exp(ln_age - ln_recency)), dtype=np.float64)

    @classmethod
    def _log_likelihood(
        cls, params: FloatArray, x: FloatArray, t_x: FloatArray, T: FloatArray
    ) -> FloatArray:
        r, alpha, s, beta = params
        # Note 009's likelihood: L = Γ(r+x) α^r β^s / Γ(r) [1/((α+T)^(r+x) (β+T)^s) + s/(r+s+x) A0].
        ln_front = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
        ln_alive = -(r + x) * np.log(alpha + T) - s * np.log(beta + T)
        ln_dead = np.log(s) - np.log(r + s + x) + cls._log_a0(params, x, t_x, T)
        return np.asarray(ln_front + np.logaddexp(ln_alive, ln_dead), dtype=np.float64)

    def fit(
        self,
        frequency: ArrayLike,
        recency: ArrayLike,
        T: ArrayLike,
        sample_weight: ArrayLike | None = None,
    ) -> ParetoNBDModel:
        """Fit by maximum likelihood on (x, t_x, T) per customer.

        Parameters
        ----------
        sample_weight
            Customers sharing each row, to fit on a compressed table.
        """
        x, t_x, age, weights = _distinct_rows(frequency, recency, T, sample_weight)
        self.params_, self.log_likelihood_, self.converged_ = _maximise(
            lambda p: self._log_likelihood(p, x, t_x, age),
            self.param_names,
            weights,
            self.initial_params,
            self.max_iter,
        )
        self.n_customers_ = float(weights.sum())
        return self

    def log_likelihood(self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> FloatArray:
        """Each customer's log-likelihood under the fitted parameters (note 009)."""
        params = np.asarray(self._params(*self.param_names))
        return self._log_likelihood(params, *_check_rfm(frequency, recency, T))

    def _log_odds_dead(self, x: FloatArray, t_x: FloatArray, T: FloatArray) -> FloatArray:
        params = np.asarray(self._params(*self.param_names))
        r, alpha, s, beta = params
        with np.errstate(divide="ignore"):
            return (
                np.log(s)
                - np.log(r + s + x)
                + (r + x) * np.log(alpha + T)
                + s * np.log(beta + T)
                + self._log_a0(params, x, t_x, T)
            )

    def expected_probability_alive(
        self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """P(alive | x, t_x, T) (note 009): 1 / (1 + s/(r+s+x) (α+T)^(r+x) (β+T)^s A0)."""
        x, t_x, age = _check_rfm(frequency, recency, T)
        return np.asarray(expit(-self._log_odds_dead(x, t_x, age)), dtype=np.float64)

    def expected_purchases(
        self, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """E[Y(t) | x, t_x, T] (note 009), with the s = 1 limit taken as a logarithm.

        ``(r+x)(β+T) / ((α+T)(s-1)) [1 - ((β+T)/(β+T+t))^(s-1)] P(alive)``.
        """
        x, t_x, age = _check_rfm(frequency, recency, T)
        horizon = _float_array(t)
        r, alpha, s, beta = self._params(*self.param_names)
        ln_shrink = np.log(beta + age) - np.log(beta + age + horizon)
        growth = _expm1_ratio(s - 1, ln_shrink)
        alive = expit(-self._log_odds_dead(x, t_x, age))
        return np.asarray((r + x) * (beta + age) / (alpha + age) * growth * alive, dtype=np.float64)

    def expected_purchases_new_customer(self, t: ArrayLike) -> FloatArray:
        """E[X(t)] of a new customer (note 009): rβ/(α(s-1)) [1 - (β/(β+t))^(s-1)]."""
        horizon = _float_array(t)
        r, alpha, s, beta = self._params(*self.param_names)
        ln_shrink = np.log(beta) - np.log(beta + horizon)
        return np.asarray(r * beta / alpha * _expm1_ratio(s - 1, ln_shrink), dtype=np.float64)


def _expm1_ratio(k: float, ln_u: FloatArray) -> FloatArray:
    """(1 - u^k) / k, and its limit -ln u at k = 0."""
    if abs(k) < 1e-8:
        return np.asarray(-ln_u, dtype=np.float64)
    return np.asarray(-np.expm1(k * ln_u) / k, dtype=np.float64)


class GammaGammaModel(_FittedModel):
    """Gamma-Gamma model of spend per transaction (Fader & Hardie 2013, note 025).

    A customer's transaction values are Gamma(p, ν) around a mean p/ν; ν ~ Gamma(q, γ) across
    customers. Fit on repeat buyers' number of repeat transactions and their mean value (z̄);
    it assumes spend is independent of purchase frequency.

    Parameters
    ----------
    initial_params
        Starting values for (p, q, gamma); default all 1.
    max_iter
        Iteration limit of each optimiser pass.

    Attributes
    ----------
    params_ : dict
        ``p``, ``q``, ``gamma``.
    log_likelihood_ : float
        Sum of the customers' log-likelihoods at ``params_``.
    n_customers_ : float
        Customers fitted.
    converged_ : bool
        Whether the optimiser reported success.
    """

    param_names = ("p", "q", "gamma")

    def __init__(self, initial_params: Sequence[float] | None = None, max_iter: int = 5000):
        self.initial_params = initial_params
        self.max_iter = max_iter

    @staticmethod
    def _log_likelihood(params: FloatArray, x: FloatArray, zbar: FloatArray) -> FloatArray:
        p, q, gamma = params
        # Note 025: f(z̄ | p, q, γ; x) = Γ(px+q) / (Γ(px) Γ(q)) γ^q z̄^(px-1) x^(px)
        #                                     / (γ + x z̄)^(px+q)
        px = p * x
        return np.asarray(
            gammaln(px + q)
            - gammaln(px)
            - gammaln(q)
            + q * np.log(gamma)
            + (px - 1) * np.log(zbar)
            + px * np.log(x)
            - (px + q) * np.log(gamma + x * zbar),
            dtype=np.float64,
        )

    def fit(
        self,
        frequency: ArrayLike,
        monetary_value: ArrayLike,
        sample_weight: ArrayLike | None = None,
    ) -> GammaGammaModel:
        """Fit on repeat buyers only: ``frequency`` >= 1 and ``monetary_value`` > 0 per row."""
        x, zbar = np.broadcast_arrays(_float_array(frequency), _float_array(monetary_value))
        if np.any(x < 1) or np.any(zbar <= 0):
            raise ValueError(
                "Gamma-Gamma is fitted on repeat buyers: every frequency must be >= 1 and "
                "every monetary value > 0"
            )
        weights = np.ones_like(x) if sample_weight is None else _float_array(sample_weight)
        self.params_, self.log_likelihood_, self.converged_ = _maximise(
            lambda p: self._log_likelihood(p, x, zbar),
            self.param_names,
            weights,
            self.initial_params,
            self.max_iter,
        )
        self.n_customers_ = float(weights.sum())
        return self

    def expected_average_value(self, frequency: ArrayLike, monetary_value: ArrayLike) -> FloatArray:
        """E[M | p, q, γ, x, z̄] (note 025): a weighted mean of the population mean and z̄.

        ``(q-1)/(px+q-1) · pγ/(q-1) + px/(px+q-1) · z̄``; customers without repeats (x = 0)
        get the population mean pγ/(q-1).
        """
        x, zbar = np.broadcast_arrays(_float_array(frequency), _float_array(monetary_value))
        p, q, gamma = self._params(*self.param_names)
        return np.asarray((p * (gamma + x * zbar)) / (p * x + q - 1), dtype=np.float64)

    def expected_population_mean(self) -> float:
        """Mean spend per transaction across customers, pγ/(q-1)."""
        p, q, gamma = self._params(*self.param_names)
        return p * gamma / (q - 1)


# --------------------------------------------------------------------------- CLV


class TransactionModel(Protocol):
    """What CLV needs of a purchase model (BG/NBD or Pareto/NBD)."""

    def expected_purchases(
        self, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """Expected purchases in the next ``t`` time units."""
        ...

    def expected_probability_alive(
        self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """Probability the customer is still active."""
        ...

    def expected_purchases_new_customer(self, t: ArrayLike) -> FloatArray:
        """Expected purchases of a new customer in ``t`` time units after the first."""
        ...


def expected_clv(
    transaction_model: TransactionModel,
    value_model: GammaGammaModel,
    summary: pd.DataFrame,
    horizon: int = 12,
    discount_rate: float = 0.01,
    time_unit: TimeUnit | str = TimeUnit.WEEK,
    *,
    period_days: float = DAYS_PER_MONTH,
) -> pd.Series:
    """Discounted expected value of each customer's purchases over ``horizon`` periods.

    ``Σ_i (E[Y(t_i)] - E[Y(t_{i-1})]) · E[M] / (1 + d)^i`` over periods i = 1 … horizon of
    ``period_days`` days (a month by default), as lifetimes' ``customer_lifetime_value``.

    Parameters
    ----------
    summary
        An :func:`rfm_summary` (``frequency``, ``recency``, ``T``, ``monetary_value``) in
        ``time_unit``, the unit the models were fitted in.
    discount_rate
        Per period (monthly by default: 0.01 ≈ 12.7 % a year).
    """
    unit = TimeUnit(time_unit)
    x, t_x, age = (summary[c].to_numpy(dtype=np.float64) for c in ("frequency", "recency", "T"))
    value = value_model.expected_average_value(x, summary["monetary_value"].to_numpy(np.float64))
    step = period_days / unit.days
    total = np.zeros(len(summary))
    previous = np.zeros(len(summary))
    for period in range(1, horizon + 1):
        cumulative = transaction_model.expected_purchases(period * step, x, t_x, age)
        total += (cumulative - previous) * value / (1 + discount_rate) ** period
        previous = cumulative
    return pd.Series(total, index=summary.index, name="expected_clv")


# --------------------------------------------------------------------------- fit_clv


@dataclass(frozen=True)
class HoldoutCheck:
    """A model's holdout forecast against what customers actually bought."""

    predicted: float
    correlation: float
    mean_absolute_error: float
    cumulative_predicted: float
    no_repeat_predicted_mean: float

    def to_dict(self) -> dict[str, float]:
        """Figures for JSON, rounded for reading."""
        return {
            "predicted": round(self.predicted, 2),
            "correlation": round(self.correlation, 4),
            "mean_absolute_error": round(self.mean_absolute_error, 4),
            "cumulative_predicted": round(self.cumulative_predicted, 2),
            "no_repeat_predicted_mean": round(self.no_repeat_predicted_mean, 4),
        }


def holdout_check(model: TransactionModel, summary: pd.DataFrame) -> HoldoutCheck:
    """Compare ``model``'s conditional forecasts with ``summary``'s holdout purchases.

    ``predicted`` sums E[Y(duration) | calibration] over customers; ``correlation`` and
    ``mean_absolute_error`` compare it customer by customer with ``frequency_holdout``;
    ``cumulative_predicted`` is the unconditional forecast of all repeat purchases up to the
    end of the holdout (FHL 2005 Figure 3's week-78 tracking figure); the last figure is the
    mean forecast of customers without repeat purchases in calibration.
    """
    x, t_x, age, actual, duration = (
        summary[c].to_numpy(dtype=np.float64)
        for c in ("frequency", "recency", "T", "frequency_holdout", "duration_holdout")
    )
    expected = model.expected_purchases(duration, x, t_x, age)
    cumulative = np.sum(model.expected_purchases_new_customer(age + duration))
    zero = x == 0
    return HoldoutCheck(
        predicted=float(expected.sum()),
        correlation=float(np.corrcoef(expected, actual)[0, 1]),
        mean_absolute_error=float(np.mean(np.abs(expected - actual))),
        cumulative_predicted=float(cumulative),
        no_repeat_predicted_mean=float(expected[zero].mean()) if zero.any() else float("nan"),
    )


@dataclass
class ClvResult:
    """Fitted CLV models on one transaction set, and their holdout check when there is one."""

    summary: pd.DataFrame
    time_unit: TimeUnit
    bgnbd: BetaGeoModel
    gamma_gamma: GammaGammaModel | None = None
    pareto_nbd: ParetoNBDModel | None = None
    holdout: dict[str, HoldoutCheck] = field(default_factory=dict)

    @property
    def has_holdout(self) -> bool:
        """Whether the summary has purchases counted after the calibration period."""
        return "frequency_holdout" in self.summary.columns

    def calibration(self) -> dict[str, Any]:
        """The calibration period: dates, unit, customers, repeat purchases and buyers."""
        summary = self.summary
        return {
            "start": summary["first_purchase"].min().date().isoformat(),
            "end": summary.attrs["calibration_end"],
            "time_unit": self.time_unit.value,
            "customers": len(summary),
            "repeat_purchases": int(summary["frequency"].sum()),
            "repeat_buyers": int((summary["frequency"] > 0).sum()),
        }

    def customer_table(self, horizon: int = 12, discount_rate: float = 0.01) -> pd.DataFrame:
        """Per customer: RFM, P(alive), expected purchases over ``horizon`` months, CLV.

        Parameters
        ----------
        horizon
            Months ahead of the calibration end.
        discount_rate
            Monthly discount rate of the CLV.
        """
        summary = self.summary
        x, t_x, age = (summary[c].to_numpy(dtype=np.float64) for c in ("frequency", "recency", "T"))
        columns = ["frequency", "recency", "T"]
        if "monetary_value" in summary.columns:
            columns.append("monetary_value")
        table = summary[columns].copy()
        table["p_alive"] = self.bgnbd.expected_probability_alive(x, t_x, age)
        span = horizon * DAYS_PER_MONTH / self.time_unit.days
        table["expected_purchases"] = self.bgnbd.expected_purchases(span, x, t_x, age)
        if self.gamma_gamma is not None:
            table["expected_average_value"] = self.gamma_gamma.expected_average_value(
                x, summary["monetary_value"].to_numpy(np.float64)
            )
            table["expected_clv"] = expected_clv(
                self.bgnbd, self.gamma_gamma, summary, horizon, discount_rate, self.time_unit
            )
        if self.has_holdout:
            table["frequency_holdout"] = summary["frequency_holdout"]
        return table

    def to_dict(self) -> dict[str, Any]:
        """Parameters, log-likelihoods, calibration and holdout figures for JSON."""
        payload: dict[str, Any] = {"bgnbd": _model_dict(self.bgnbd)}
        if self.gamma_gamma is not None:
            payload["gamma_gamma"] = _model_dict(self.gamma_gamma)
            payload["gamma_gamma"]["customers"] = int(self.gamma_gamma.n_customers_)
        if self.pareto_nbd is not None:
            payload["pareto_nbd"] = _model_dict(self.pareto_nbd)
        payload["customers"] = len(self.summary)
        payload["calibration"] = self.calibration()
        if self.has_holdout:
            summary = self.summary
            zero = summary["frequency"] == 0
            holdout: dict[str, Any] = {
                "start": (
                    date.fromisoformat(summary.attrs["calibration_end"]) + timedelta(days=1)
                ).isoformat(),
                "end": summary.attrs["observation_end"],
                "duration": round(float(summary["duration_holdout"].iloc[0]), 4),
                "actual": int(summary["frequency_holdout"].sum()),
                "cumulative_actual": int(
                    summary["frequency"].sum() + summary["frequency_holdout"].sum()
                ),
                "no_repeat_customers": int(zero.sum()),
                "no_repeat_actual_mean": round(
                    float(summary.loc[zero, "frequency_holdout"].mean()), 4
                ),
            }
            for name, check in self.holdout.items():
                figures = check.to_dict()
                if name == "bgnbd":
                    holdout.update(figures)
                else:
                    holdout[name] = figures
            payload["holdout"] = holdout
        return payload


def _model_dict(model: _FittedModel) -> dict[str, Any]:
    figures: dict[str, Any] = {name: round(value, 6) for name, value in model.params_.items()}
    figures["log_likelihood"] = round(float(model.log_likelihood_), 4)
    figures["converged"] = bool(model.converged_)
    return figures


def fit_clv(
    transactions: pd.DataFrame,
    *,
    customer_col: str,
    date_col: str,
    amount_col: str | None = None,
    calibration_end: DateLike | None = None,
    observation_end: DateLike | None = None,
    time_unit: TimeUnit | str = TimeUnit.WEEK,
    pareto_nbd: bool = True,
) -> ClvResult:
    """Summarise transactions, fit BG/NBD (+ Gamma-Gamma, Pareto/NBD) and check the holdout.

    Gamma-Gamma is fitted when ``amount_col`` is given, on the repeat buyers with a positive
    mean repeat amount. The holdout check runs when purchases after ``calibration_end`` are
    counted (see :func:`rfm_summary`).
    """
    unit = TimeUnit(time_unit)
    summary = rfm_summary(
        transactions,
        customer_col=customer_col,
        date_col=date_col,
        amount_col=amount_col,
        calibration_end=calibration_end,
        observation_end=observation_end,
        time_unit=unit,
    )
    x, t_x, age = (summary[c].to_numpy(dtype=np.float64) for c in ("frequency", "recency", "T"))
    result = ClvResult(summary, unit, BetaGeoModel().fit(x, t_x, age))
    if pareto_nbd:
        result.pareto_nbd = ParetoNBDModel().fit(x, t_x, age)
    if amount_col:
        buyers = summary[(summary["frequency"] > 0) & (summary["monetary_value"] > 0)]
        if len(buyers) >= 3:
            result.gamma_gamma = GammaGammaModel().fit(
                buyers["frequency"], buyers["monetary_value"]
            )
    if result.has_holdout:
        result.holdout["bgnbd"] = holdout_check(result.bgnbd, summary)
        if result.pareto_nbd is not None:
            result.holdout["pareto_nbd"] = holdout_check(result.pareto_nbd, summary)
    return result
