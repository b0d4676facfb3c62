"""``Workspace``: the one Python facade over a project, with a named part per stage."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

import pyarrow as pa

from jingzhun.campaigns import (
    CampaignSpec,
    ConsentLedger,
    MessageTemplate,
    Plan,
    RenderedMessage,
    SuppressionList,
    approve_plan,
    issue_codes,
    latest_plan,
    launch_plan,
    load_campaigns,
    load_templates,
    message_context,
    offer_for,
    plan_campaign,
    render_message,
    rollout_plan,
)
from jingzhun.core import NotFoundError, Principal, Project, SpecError, load_project
from jingzhun.delivery import (
    OutboundMessage,
    Worker,
    build_channels,
    load_delivery_settings,
    render_from_payload,
)
from jingzhun.engine import ColumnCipher, Engine, connect
from jingzhun.identity import (
    IdentityReport,
    IdentityResolver,
    IdentitySettings,
    MatchSummary,
    MatchThresholds,
    match_file,
    probabilistic_pairs,
)
from jingzhun.ingest import (
    FileReport,
    LoadReport,
    ingest,
    quarantine_counts,
    quarantine_summary,
)
from jingzhun.journeys import (
    BacktestResult,
    JourneyRunner,
    JourneySpec,
    RunReport,
    backtest_journey,
    check_journeys,
    journey_status,
    load_journey_settings,
    load_journeys,
    runner_for,
)
from jingzhun.measure import (
    CampaignKpis,
    Overview,
    ReportFiles,
    campaign_kpis,
    overview,
    write_campaign_report,
    write_overview_report,
)
from jingzhun.models import (
    CustomerClv,
    CustomerModelFit,
    ModelRecord,
    ModelRegistry,
    fit_churn,
    fit_customer_clv,
)
from jingzhun.privacy import (
    CorrectionReport,
    ErasureReport,
    PrivacyService,
    RetentionReport,
    SubjectExport,
    load_privacy_settings,
    seal_store,
    warehouse_cipher,
)
from jingzhun.profile import (
    PROFILES,
    ProfileReport,
    ProfileSettings,
    build_profiles,
    find_customer_key,
    load_profile_settings,
    load_tag_specs,
    profile_view,
)
from jingzhun.recommend import (
    SETTINGS_FILE as RECOMMEND_SETTINGS_FILE,
)
from jingzhun.recommend import (
    Evaluation,
    EvaluationMode,
    RecommendReport,
    RecommendSettings,
    evaluate,
    explain_customer,
    export_recommendations,
    fit_recommendations,
    latest_order_date,
    load_interactions,
    load_recommend_settings,
    stored_recommendations,
    time_split,
)
from jingzhun.segments import (
    SEGMENT_CHANGES,
    SEGMENT_MEMBERS,
    ClusterResult,
    CompiledSegment,
    Explanation,
    LookalikeEvaluation,
    LookalikeResult,
    SegmentSpec,
    SegmentsReport,
    build_segments,
    cluster_customers,
    compile_segment,
    count_members,
    dependency_order,
    evaluate_lookalike,
    explain,
    export_members,
    load_segment_specs,
    lookalike,
    parse_segment,
    preview,
)
from jingzhun.store import CampaignPlan, OperationalStore, QueuedMessage


@dataclass
class BuildReport:
    """What ``Workspace.build`` did, stage by stage (segments: None when there are none)."""

    identity: IdentityReport
    profiles: ProfileReport
    segments: SegmentsReport | None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {
            "identity": self.identity.to_dict(),
            "profiles": self.profiles.to_dict(),
            "segments": self.segments.to_dict() if self.segments is not None else None,
        }


class IngestPart:
    """``ws.ingest``: load sources, look at what was quarantined."""

    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace

    def run(
        self,
        sources: Iterable[str] | None = None,
        *,
        on_file: Callable[[FileReport], None] | None = None,
    ) -> LoadReport:
        """Load the named sources (all when None); one transaction per file, recorded as a run."""
        names = list(sources) if sources is not None else None
        if names is not None:
            for name in names:
                self._ws.project.source(name)  # unknown names fail before anything runs
        run_id = self._ws.store.start_run("ingest", self._ws.project.name)
        try:
            report = ingest(self._ws.engine, self._ws.project, names, on_file=on_file)
        except Exception as exc:
            self._ws.store.finish_run(run_id, "failed", {}, error=str(exc))
            raise
        self._ws.store.finish_run(
            run_id,
            "ok" if report.ok else "failed",
            report.to_dict(),
            error=None if report.ok else "; ".join(f.error or "" for f in report.files if f.error),
        )
        return report

    def quarantine(self, source: str | None = None, limit: int = 20) -> pa.Table:
        """The latest quarantined values with file, row, column and reason."""
        return quarantine_summary(self._ws.engine, source, limit)

    def quarantine_counts(self) -> pa.Table:
        """Quarantined values per source, column and reason."""
        return quarantine_counts(self._ws.engine)


class IdentityPart:
    """``ws.identity``: resolve records into customers; review, accept, reject, unmerge."""

    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace

    @property
    def resolver(self) -> IdentityResolver:
        """The resolver over this project's warehouse, store and identity settings."""
        settings = IdentitySettings.from_project(self._ws.project)
        return IdentityResolver(self._ws.engine, self._ws.store, settings)

    def build(self, as_of: date | None = None, *, probabilistic: bool = True) -> IdentityReport:
        """Rebuild ``identity_map`` and ``merge_log`` (deterministic links, then splink's
        pairs unless ``probabilistic`` is False); recorded as a run.
        """
        run_id = self._ws.store.start_run("identity build", self._ws.project.name)
        try:
            resolver = self.resolver
            pairs = (
                probabilistic_pairs(self._ws.engine, resolver.settings, as_of)
                if probabilistic
                else None
            )
            report = resolver.build(as_of, pairs)
        except Exception as exc:
            self._ws.store.finish_run(run_id, "failed", {}, error=str(exc))
            raise
        self._ws.store.finish_run(run_id, "ok", report.to_dict())
        return report

    def pending_reviews(self) -> pa.Table:
        """Pairs waiting for a person's decision, with their match weights."""
        return self.resolver.pending_reviews()

    def decide(self, node_a: str, node_b: str, *, accept: bool, by: str) -> None:
        """Accept or reject a pair; every later build reuses the decision."""
        self.resolver.decide(node_a, node_b, accept, by)

    def match_file(
        self,
        input_path: Path,
        output_path: Path,
        *,
        id_column: str,
        column_overrides: dict[str, str] | None = None,
        region: str | None = None,
    ) -> MatchSummary:
        """Deduplicate a CRM export: every record with a ``cluster_id``.

        Thresholds and blocklist come from ``jingzhun.yml``; ``region`` defaults to its own.
        """
        config = self._ws.project.settings.identity
        return match_file(
            input_path,
            output_path,
            id_column=id_column,
            column_overrides=column_overrides,
            region=(region or self._ws.project.settings.region).upper(),
            thresholds=MatchThresholds(
                merge=config.merge_threshold, review=config.review_threshold
            ),
            blocklist=tuple(config.blocklist),
        )

    def unmerge(self, customer: str, node: str, *, by: str) -> int:
        """Split ``node`` off ``customer``; later builds keep them apart."""
        return self.resolver.unmerge(customer, node, by)


class ProfilesPart:
    """``ws.profiles``: one row per customer with tags, as it stood on a date; the 360° view."""

    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace

    @property
    def settings(self) -> ProfileSettings:
        """Profile settings from ``tags/_settings.yml`` (defaults when the file is absent)."""
        return load_profile_settings(self._ws.project.root / "tags" / "_settings.yml")

    def build(
        self, as_of: date | None = None, *, settings: ProfileSettings | None = None
    ) -> ProfileReport:
        """Build ``profiles`` and extend ``tag_history`` as of a date (default: today)."""
        tags_dir = self._ws.project.root / "tags"
        settings = settings or self.settings
        tags = load_tag_specs(tags_dir) if tags_dir.is_dir() else []
        run_id = self._ws.store.start_run("profiles build", self._ws.project.name)
        try:
            report = build_profiles(
                self._ws.engine, as_of=as_of or date.today(), settings=settings, tags=tags
            )
        except Exception as exc:
            self._ws.store.finish_run(run_id, "failed", {}, error=str(exc))
            raise
        self._ws.store.finish_run(run_id, "ok", report.to_dict())
        return report

    def show(self, customer: str, *, mask_pii: bool = True) -> dict[str, Any]:
        """The 360° view of a customer_key, a source customer id, an e-mail or a phone,
        with the customer's stored recommendations (empty before ``recommend fit``).
        """
        view = profile_view(self._ws.engine, customer, mask_pii=mask_pii)
        key = view.get("customer_key")
        view["recommendations"] = (
            stored_recommendations(self._ws.engine, str(key), top=5) if key else []
        )
        return view


class SegmentsPart:
    """``ws.segments``: audiences from the rules in ``segments/``; count, preview, explain,
    export, membership over time, clusters and look-alikes.
    """

    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace
        self._compiled: dict[str, CompiledSegment] = {}

    @property
    def folder(self) -> Path:
        """Where the segment files live: ``segments/`` in the project."""
        return self._ws.project.root / "segments"

    def specs(self) -> dict[str, SegmentSpec]:
        """Every segment of the project, checked for shape, duplicates and cycles."""
        specs = load_segment_specs(self.folder)
        return {s.name: s for s in dependency_order(specs)}

    def spec(self, name: str) -> SegmentSpec:
        """One segment by name; unknown names list the known ones."""
        specs = self.specs()
        if name not in specs:
            known = ", ".join(sorted(specs)) or "none (add YAML files under segments/)"
            raise NotFoundError(f"no segment named '{name}'; segments: {known}")
        return specs[name]

    def as_of(self) -> date:
        """The date the stored profiles describe (segments are evaluated on it)."""
        engine = self._ws.engine
        if not engine.exists(PROFILES) or engine.count(PROFILES) == 0:
            raise NotFoundError("no profiles yet: run 'jingzhun build' first")
        profiles = engine.read(PROFILES)
        day: date = engine.scalar(profiles.as_of.max())
        return day

    def compile(self, name_or_spec: str | SegmentSpec) -> CompiledSegment:
        """The segment compiled for this project's engine on the profiles' date."""
        specs = self.specs()
        spec = name_or_spec if isinstance(name_or_spec, SegmentSpec) else self.spec(name_or_spec)
        return compile_segment(
            self._ws.engine,
            spec,
            as_of=self.as_of(),
            specs=specs,
            include_late_loads=self._ws.profiles.settings.include_late_loads,
        )

    def from_rule(self, name: str, rule: Any, description: str = "") -> SegmentSpec:
        """A segment from the rule structure (the JSON the API receives), checked for shape."""
        spec, problems = parse_segment(
            {"name": name, "description": description, "rule": rule},
            file=Path(f"<segment {name}>"),
        )
        if problems or spec is None:
            raise SpecError(problems)
        return spec

    def count(self, name_or_spec: str | SegmentSpec) -> int:
        """How many customers the segment holds now."""
        return count_members(self._ws.engine, self.compile(name_or_spec))

    def counts(self) -> dict[str, int]:
        """Every segment's count, in dependency order."""
        return {name: self.count(spec) for name, spec in self.specs().items()}

    def preview(
        self,
        name_or_spec: str | SegmentSpec,
        *,
        limit: int = 20,
        columns: list[str] | None = None,
        mask_pii: bool = True,
    ) -> pa.Table:
        """The first members with the main columns; PII masked unless ``mask_pii`` is False."""
        compiled = self.compile(name_or_spec)
        return preview(self._ws.engine, compiled, limit=limit, columns=columns, mask_pii=mask_pii)

    def explain(self, name_or_spec: str | SegmentSpec, customer: str) -> Explanation:
        """Why a customer is in or out: every predicate with its value and truth."""
        return explain(self._ws.engine, self.compile(name_or_spec), customer)

    def export(
        self,
        name: str,
        out: Path,
        *,
        columns: list[str] | None = None,
        mask_pii: bool = False,
    ) -> int:
        """Write the members to a CSV or Parquet file; returns rows written."""
        compiled = self.compile(name)
        return export_members(self._ws.engine, compiled, out, columns=columns, mask_pii=mask_pii)

    def sql(self, name: str) -> str:
        """The members query in the engine's SQL dialect."""
        return self.compile(name).sql()

    def build(self, as_of: date | None = None) -> SegmentsReport:
        """Evaluate every segment; record members, entries and exits (a run in the store).

        ``as_of`` is the profiles' date (read from ``profiles`` when not given).
        """
        specs = list(self.specs().values())
        as_of = as_of or self.as_of()
        run_id = self._ws.store.start_run("segments build", self._ws.project.name)
        try:
            report = build_segments(
                self._ws.engine,
                specs,
                as_of=as_of,
                build_id=str(run_id),
                include_late_loads=self._ws.profiles.settings.include_late_loads,
            )
        except Exception as exc:
            self._ws.store.finish_run(run_id, "failed", {}, error=str(exc))
            raise
        self._ws.store.finish_run(run_id, "ok", report.to_dict())
        return report

    def cluster(
        self,
        cluster_set: str,
        *,
        method: str = "kmeans",
        k: int | None = None,
        seed: int = 0,
    ) -> ClusterResult:
        """Cluster customers by behaviour; store ``clusters`` and write one segment file per
        cluster under ``segments/<cluster_set>/``.
        """
        return cluster_customers(
            self._ws.engine,
            cluster_set=cluster_set,
            method=method,
            k=k,
            seed=seed,
            project_root=self._ws.project.root,
            as_of=self.as_of(),
        )

    def members(self, name: str) -> list[str]:
        """The ``customer_key`` of every member, sorted."""
        table = self._ws.engine.execute(self.compile(name).members)
        return sorted(str(v) for v in table.column("customer_key").to_pylist())

    def lookalike(
        self, seed_segment: str, *, top: int | None = None, method: str = "pu", seed: int = 0
    ) -> LookalikeResult:
        """Rank everybody outside ``seed_segment`` by similarity to it (``lookalike_scores``)."""
        return lookalike(
            self._ws.engine,
            seed_segment=seed_segment,
            seed_keys=self.members(seed_segment),
            top=top,
            method=method,
            seed=seed,
            as_of=self.as_of(),
        )

    def evaluate_lookalike(
        self, seed_segment: str, *, hidden_fraction: float = 0.3, seed: int = 0
    ) -> LookalikeEvaluation:
        """Hide part of the seed, rank, and measure how many hidden members come back."""
        return evaluate_lookalike(
            self._ws.engine,
            self.members(seed_segment),
            hidden_fraction=hidden_fraction,
            seed=seed,
        )

    def changes(self, name: str | None = None, limit: int = 50) -> pa.Table:
        """The latest entries and exits (of one segment, or all)."""
        engine = self._ws.engine
        if not engine.exists(SEGMENT_CHANGES):
            return pa.table({"segment": [], "customer_key": [], "change": [], "build_id": []})
        t = engine.read(SEGMENT_CHANGES)
        if name is not None:
            t = t.filter(t.segment == name)
        return engine.execute(
            t.order_by([t.changed_at.desc(), "segment", "customer_key"]).limit(limit)
        )


class ModelsPart:
    """``ws.models``: CLV and churn scores for the project's customers, and the registry."""

    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace

    @property
    def registry(self) -> ModelRegistry:
        """Fitted models of this project: metadata in the store, artifacts in state/models."""
        return ModelRegistry(self._ws.store, self._ws.project.root / "state" / "models")

    def _as_of(self, as_of: date | None) -> date:
        return as_of or self._ws.segments.as_of()

    def fit_clv(self, as_of: date | None = None) -> CustomerClv:
        """BG/NBD + Gamma-Gamma on the customers' orders; scores ``p_alive``,
        ``expected_purchases_12m``, ``clv_12m`` (default date: the profiles').
        """
        late = self._ws.profiles.settings.include_late_loads
        return fit_customer_clv(self._ws.engine, self._as_of(as_of), include_late_loads=late)

    def fit_churn(self, as_of: date | None = None, *, window_days: int = 90) -> CustomerModelFit:
        """A churn model validated out of time; writes ``churn_score`` for every buyer."""
        late = self._ws.profiles.settings.include_late_loads
        return fit_churn(
            self._ws.engine,
            self._as_of(as_of),
            registry=self.registry,
            window_days=window_days,
            include_late_loads=late,
        )

    def list(self, kind: str | None = None) -> list[ModelRecord]:
        """Registered models, newest first."""
        return self.registry.list(kind)


class RecommendPart:
    """``ws.recommend``: train recommenders, store every customer's top N, explain, evaluate."""

    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace

    def settings(self) -> tuple[RecommendSettings, bool]:
        """``models/recommend.yml`` and whether late-loaded history counts (the recommend
        settings say so, else the profiles' settings do).
        """
        root = self._ws.project.root
        settings = load_recommend_settings(root / RECOMMEND_SETTINGS_FILE)
        late = settings.include_late_loads
        if late is None:
            late = self._ws.profiles.settings.include_late_loads
        return settings, late

    def fit(
        self,
        as_of: date | None = None,
        *,
        method: str | None = None,
        top: int | None = None,
        random_state: int = 0,
    ) -> RecommendReport:
        """Train on purchases up to ``as_of`` (default: the latest order's date); replace the
        ``recommendations`` and similar-item tables. Recorded in ``runs``.
        """
        settings, late = self.settings()
        store = self._ws.store
        run_id = store.start_run("recommend fit", self._ws.project.name)
        try:
            report = fit_recommendations(
                self._ws.engine,
                as_of=as_of,
                settings=settings,
                method=method,
                top=top,
                include_late_loads=late,
                random_state=random_state,
            )
        except Exception as exc:
            store.finish_run(run_id, "failed", {}, error=str(exc))
            raise
        store.finish_run(run_id, "ok", report.to_dict())
        return report

    def show(self, customer: str, *, top: int | None = None) -> dict[str, Any]:
        """A customer's stored list, each item with why (because you bought ...)."""
        return explain_customer(self._ws.engine, customer, top=top)

    def export(self, path: Path, *, top: int | None = None) -> int:
        """Write ``customer_id, item_id, rank, score, method`` (source ids) to CSV or Parquet."""
        return export_recommendations(self._ws.engine, path, top=top)

    def evaluate(
        self,
        split: date,
        mode: EvaluationMode | str = EvaluationMode.DISCOVERY,
        *,
        until: date | None = None,
        methods: list[str] | None = None,
        k: int = 10,
        random_state: int = 0,
    ) -> Evaluation:
        """Train before ``split``, test on purchases from it to ``until``: HR@k, NDCG@k,
        coverage and novelty of each method beside its baseline.
        """
        settings, late = self.settings()
        last = until or latest_order_date(self._ws.engine)
        data = load_interactions(
            self._ws.engine,
            last,
            include_late_loads=late,
            stock_days=settings.rules.in_stock_days,
        )
        cut = time_split(data, split, test_until=last, rules=settings.rules)
        return evaluate(
            cut,
            EvaluationMode(mode),
            methods=methods,
            k=k,
            rules=settings.rules,
            random_state=random_state,
        )


class CampaignsPart:
    """``ws.campaigns``: consent ledger, suppressions, campaign plans, approval and launch."""

    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace

    @property
    def folder(self) -> Path:
        """Where campaign files live: ``campaigns/`` in the project."""
        return self._ws.project.root / "campaigns"

    @property
    def consents(self) -> ConsentLedger:
        """The consent ledger (operational store)."""
        return ConsentLedger(self._ws.store)

    @property
    def suppressions(self) -> SuppressionList:
        """Addresses that must not be contacted."""
        return SuppressionList(self._ws.store)

    def specs(self) -> dict[str, CampaignSpec]:
        """Every campaign of the project."""
        return load_campaigns(self.folder)

    def spec(self, name: str) -> CampaignSpec:
        """One campaign; unknown names list the known ones."""
        specs = self.specs()
        if name not in specs:
            known = ", ".join(sorted(specs)) or "none (add YAML files under campaigns/)"
            raise NotFoundError(f"no campaign named '{name}'; campaigns: {known}")
        return specs[name]

    def plan(self, name: str, *, by: str) -> Plan:
        """Compute the waterfall and selection and store the plan (``send_plan``)."""
        spec = self.spec(name)
        audience = self._ws.segments.compile(spec.audience).members
        return plan_campaign(
            self._ws.engine,
            self._ws.store,
            spec,
            audience,
            as_of=self._ws.segments.as_of(),
            timezone=self._ws.project.settings.timezone,
            created_by=by,
        )

    def approve(self, name: str, *, by: str) -> CampaignPlan:
        """Approve the latest plan (by someone else when the campaign requires approval)."""
        return approve_plan(self._ws.store, self.spec(name), by=by)

    def launch(self, name: str, *, by: str) -> tuple[CampaignPlan, int]:
        """Queue the plan's messages for delivery; refused when data or spec changed."""
        return launch_plan(
            self._ws.engine,
            self._ws.store,
            self.spec(name),
            by=by,
            secret=self._ws.project.secret("coupons"),
        )

    def rollout(self, name: str, *, winner: str, by: str) -> tuple[CampaignPlan, int]:
        """After the pilot is decided: send the winning variant to the rest of the treated."""
        return rollout_plan(
            self._ws.engine,
            self._ws.store,
            self.spec(name),
            winner=winner,
            by=by,
            secret=self._ws.project.secret("coupons"),
        )

    def templates(self) -> dict[str, MessageTemplate]:
        """Message templates under ``templates/``."""
        return load_templates(self._ws.project.root / "templates")

    def preview(self, name: str, customer: str, *, variant: str | None = None) -> RenderedMessage:
        """A variant's message as one customer would get it (offer and a sample coupon code)."""
        spec = self.spec(name)
        chosen = next((v for v in spec.variants if variant in (None, v.name)), None)
        if chosen is None:
            names = ", ".join(v.name for v in spec.variants)
            raise NotFoundError(f"campaign {name} has no variant '{variant}'; variants: {names}")
        if chosen.template is None:
            raise NotFoundError(f"variant {chosen.name} of {name} names no template")
        templates = self.templates()
        if chosen.template not in templates:
            known = ", ".join(sorted(templates)) or "none (add YAML files under templates/)"
            raise NotFoundError(f"no template '{chosen.template}'; templates: {known}")
        engine = self._ws.engine
        key = find_customer_key(engine, customer, self._ws.segments.as_of())
        offer, code = None, None
        if spec.offer is not None:
            # issued the day after the profiles' date, as a plan without a send window would be
            issued = self._ws.segments.as_of() + timedelta(days=1)
            offer = offer_for(spec.offer, self._member_of(key), issued_on=issued)
            if spec.offer.coupon_prefix is not None:
                code = issue_codes(
                    spec.name,
                    [key],
                    prefix=spec.offer.coupon_prefix,
                    secret=self._ws.project.secret("coupons"),
                )[key]
        context = message_context(
            engine,
            key,
            offer=offer,
            coupon=code,
            campaign={"name": spec.name, "description": spec.description},
            currency=self._ws.project.settings.currency,
        )
        return render_message(templates[chosen.template], context, spec.channel.value)

    def _member_of(self, customer_key: str) -> set[str]:
        engine = self._ws.engine
        if not engine.exists(SEGMENT_MEMBERS):
            return set()
        t = engine.read(SEGMENT_MEMBERS)
        rows = engine.execute(t.filter(t.customer_key == customer_key).select("segment"))
        return set(rows.column("segment").to_pylist())

    def latest_plan(self, name: str) -> CampaignPlan:
        """The newest plan of the campaign that is not superseded."""
        return latest_plan(self._ws.store, name)


class JourneysPart:
    """``ws.journeys``: the automated journeys under ``journeys/``: check, run, replay."""

    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace

    @property
    def folder(self) -> Path:
        return self._ws.project.root / "journeys"

    def specs(self) -> dict[str, JourneySpec]:
        """Every journey, checked against the templates and segments it names."""
        root = self._ws.project.root
        specs = load_journeys(self.folder)
        load_journey_settings(self.folder)
        segments = [s.name for s in load_segment_specs(root / "segments")]
        check_journeys(specs, load_templates(root / "templates"), segments)
        return specs

    def spec(self, name: str) -> JourneySpec:
        """One checked journey by name."""
        specs = self.specs()
        if name not in specs:
            known = ", ".join(sorted(specs)) or "none (add YAML files under journeys/)"
            raise NotFoundError(f"no journey named '{name}'; journeys: {known}")
        return specs[name]

    def runner(self) -> JourneyRunner:
        """The runner over the journeys, their templates, segments and settings; coupons
        are signed with the project's key.
        """
        self.specs()
        return runner_for(
            self._ws.project,
            self._ws.engine,
            self._ws.store,
            coupon_secret=self._ws.project.secret("coupons"),
        )

    def run(self, now: datetime, *, journeys: Iterable[str] | None = None) -> RunReport:
        """Enrol whoever a trigger found up to ``now`` (aware) and advance every due step;
        sends go to the delivery queue. Recorded in ``runs``.
        """
        runner = self.runner()
        store = self._ws.store
        run_id = store.start_run("journey run", self._ws.project.name)
        try:
            report = runner.run(now, journeys=journeys)
        except Exception as exc:
            store.finish_run(run_id, "failed", {}, error=str(exc))
            raise
        store.finish_run(run_id, "ok", report.to_dict())
        return report

    def status(self, name: str, *, recent: int = 10) -> dict[str, Any]:
        """Enrolments by state and step, exits, messages queued, the newest enrolments."""
        self.spec(name)
        return journey_status(self._ws.store, name, recent=recent)

    def backtest(self, name: str, start: date, end: date, *, sample: int = 10) -> BacktestResult:
        """Replay a journey over ``start``..``end``: who would have entered, what they would
        have been sent and when. Writes nothing.
        """
        root = self._ws.project.root
        return backtest_journey(
            self._ws.engine,
            self._ws.store,
            self.spec(name),
            start=start,
            end=end,
            timezone=self._ws.project.settings.timezone,
            settings=load_journey_settings(self.folder),
            segments={s.name: s for s in load_segment_specs(root / "segments")},
            include_late_loads=self._ws.profiles.settings.include_late_loads,
            sample=sample,
        )


class PrivacyPart:
    """``ws.privacy``: data-subject requests (export, correct, erase), retention, keys.

    Each request works on its own connection to the warehouse (erasure rewrites the file), so
    the workspace's connection is closed first and reopened on its next use.
    """

    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace

    @property
    def service(self) -> PrivacyService:
        self._ws.release_engine()
        return PrivacyService(self._ws.project, self._ws.store)

    def export(self, subject: str, *, by: str, principal: Principal | None = None) -> SubjectExport:
        """Everything held about the person found by any identifier (access, portability)."""
        return self.service.export(subject, by=by, principal=principal)

    def archive_export(self, export: SubjectExport) -> Path:
        """Keep an export encrypted under the person's own key (crypto-shredded on erasure)."""
        return self.service.archive_export(export)

    def correct(
        self,
        subject: str,
        field_name: str,
        value: str | None,
        *,
        by: str,
        principal: Principal | None = None,
    ) -> CorrectionReport:
        """Fix an attribute at the source layer, so it survives rebuilds and later loads."""
        return self.service.correct(subject, field_name, value, by=by, principal=principal)

    def erase(self, subject: str, *, by: str, principal: Principal | None = None) -> ErasureReport:
        """Delete the person everywhere under the project and tombstone their identifiers."""
        report = self.service.erase(subject, by=by, principal=principal)
        made = self.__dict__.get("cipher")  # made by cached_property, if used yet
        if made is not None:
            made.forget()  # no opened value of the person stays in memory
        return report

    def retention(
        self, as_of: date | None = None, *, dry_run: bool = False, by: str = "system"
    ) -> RetentionReport:
        """Purge what is older than each table's ``retention_days`` (``privacy.yml``)."""
        return self.service.retention(as_of=as_of, dry_run=dry_run, by=by)

    @cached_property
    def cipher(self) -> ColumnCipher | None:
        """The warehouse's column cipher, made once (None when encryption at rest is off)."""
        return warehouse_cipher(self._ws.project, self._ws.store)

    def encrypt(self, *, by: str = "system", check: bool = False) -> dict[str, Any]:
        """Seal personal values still stored in clear (``jingzhun privacy encrypt``)."""
        return self.service.encrypt_warehouse(by=by, check=check)

    def rotate_keys(self, *, by: str) -> dict[str, object]:
        """Re-wrap every data key under a new master key."""
        return self.service.rotate_keys(by=by)

    def requests(self, limit: int = 50) -> list[dict[str, Any]]:
        """The latest data-subject requests and key operations, newest first."""
        return self.service.requests(limit=limit)

    def has_retention(self) -> bool:
        """Whether ``privacy.yml`` sets any retention policy."""
        return bool(load_privacy_settings(self._ws.project.root).retention)


class DeliveryPart:
    """``ws.delivery``: render queued messages from the campaigns' templates and send them."""

    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace
        self._templates: dict[str, MessageTemplate] | None = None
        self._specs: dict[str, CampaignSpec] | None = None

    def render(self, queued: QueuedMessage) -> OutboundMessage:
        """A queued campaign message rendered with its variant's template, the customer's
        profile and the offer and coupon stored in the queue at launch. Messages without a
        campaign template fall back to content in the payload.
        """
        if self._specs is None:
            self._specs = self._ws.campaigns.specs()
            self._templates = self._ws.campaigns.templates()
        spec = self._specs.get(queued.campaign)
        payload = dict(queued.payload or {})
        variant = next(
            (v for v in (spec.variants if spec else []) if v.name == queued.variant), None
        )
        templates = self._templates or {}
        if spec is None or variant is None or variant.template not in templates:
            return render_from_payload(queued)
        context = message_context(
            self._ws.engine,
            queued.customer_key,
            offer=payload.get("offer"),
            coupon=(payload.get("offer") or {}).get("code"),
            campaign={"name": spec.name, "description": spec.description},
            currency=self._ws.project.settings.currency,
        )
        message = render_message(templates[str(variant.template)], context, spec.channel.value)
        return OutboundMessage(
            idempotency_key=queued.idempotency_key,
            recipient=queued.address,
            customer_key=queued.customer_key,
            campaign=queued.campaign,
            subject=message.subject or "",
            html=message.html or "",
            text=message.text or "",
            body=message.sms or "",
            metadata={"variant": queued.variant},
        )

    def worker(
        self,
        *,
        worker_id: str = "local",
        clock: Callable[[], datetime] | None = None,
    ) -> Worker:
        """A worker over the channels of ``delivery.yml`` that renders with the templates.

        ``clock`` (aware UTC) replaces the wall clock: what is due, and the ``sent_at`` the
        delivery log records, follow it (a replay of a past send date, as in the demo).
        """
        root = self._ws.project.root
        settings = load_delivery_settings(root)
        channels = build_channels(settings, root=root, region=self._ws.project.settings.region)
        return Worker(
            self._ws.store,
            channels,
            self.render,
            batch_size=settings.worker.batch_size,
            rate_limits=settings.rate_limits(),
            backoff=settings.backoff(),
            lease_seconds=settings.worker.lease_seconds,
            settle_seconds=settings.worker.settle_seconds,
            in_doubt=settings.in_doubt(),
            worker_id=worker_id,
            journal=root / "state" / "delivery" / f"{worker_id}.journal",
            clock=clock,
        )


class MeasurePart:
    """``ws.measure``: figures and reports over the warehouse."""

    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace

    def overview(self, as_of: date | None = None) -> Overview:
        """Customers, orders, revenue, returns, categories — the overview figures."""
        return overview(self._ws.engine, currency=self._ws.project.settings.currency, as_of=as_of)

    def report(
        self,
        path: Path | None = None,
        *,
        as_of: date | None = None,
        notes: list[str] | None = None,
    ) -> Path:
        """Write the overview HTML report (default ``reports/overview.html`` in the project)."""
        target = path or self._ws.project.root / "reports" / "overview.html"
        figures = self.overview(as_of)
        return write_overview_report(
            figures,
            target,
            title=f"{self._ws.project.name} — overview",
            project=self._ws.project.name,
            notes=notes or [],
        )

    def campaign(self, name: str, *, as_of: date | None = None) -> CampaignKpis:
        """What a launched campaign did: delivery, opens, clicks, conversions, revenue, ROI,
        and its holdout's incremental conversions and revenue with intervals.
        """
        return campaign_kpis(
            self._ws.engine,
            self._ws.store,
            self._ws.campaigns.spec(name),
            as_of=as_of,
            currency=self._ws.project.settings.currency,
        )

    def campaign_report(
        self,
        name: str,
        path: Path | None = None,
        *,
        as_of: date | None = None,
        images: bool = True,
    ) -> tuple[CampaignKpis, ReportFiles]:
        """Write a campaign's HTML report (default ``reports/campaign_NAME.html``) and PNG
        charts beside it; returns the figures it shows and the files.
        """
        kpis = self.campaign(name, as_of=as_of)
        target = path or self._ws.project.root / "reports" / f"campaign_{name}.html"
        return kpis, write_campaign_report(kpis, target, images=images)


class Workspace:
    """A project opened for work: its settings, warehouse, operational store and stage parts.

    >>> ws = Workspace.open("examples/online_retail")  # doctest: +SKIP
    >>> ws.ingest.run().to_dict()["totals"]  # doctest: +SKIP
    """

    def __init__(self, project: Project) -> None:
        self.project = project
        self._engine: Engine | None = None
        self._store: OperationalStore | None = None
        self.ingest = IngestPart(self)
        self.identity = IdentityPart(self)
        self.profiles = ProfilesPart(self)
        self.segments = SegmentsPart(self)
        self.models = ModelsPart(self)
        self.recommend = RecommendPart(self)
        self.campaigns = CampaignsPart(self)
        self.delivery = DeliveryPart(self)
        self.journeys = JourneysPart(self)
        self.privacy = PrivacyPart(self)
        self.measure = MeasurePart(self)

    @classmethod
    def open(cls, path: Path | str = ".") -> Workspace:
        """Load and validate the project folder at ``path``."""
        return cls(load_project(path))

    @property
    def engine(self) -> Engine:
        """The warehouse, opened on first use."""
        if self._engine is None:
            self._engine = connect(
                self.project.settings.engine, self.project.root, cipher=self.privacy.cipher
            )
        return self._engine

    @property
    def store(self) -> OperationalStore:
        """The operational store, opened and migrated on first use."""
        if self._store is None:
            self._store = OperationalStore.open(
                self.project.settings.stores.operational, self.project.root
            )
            self._store.migrate()
            seal_store(self.project, self._store)  # addresses, consent subjects
        return self._store

    def build(self, as_of: date | None = None, *, probabilistic: bool = True) -> BuildReport:
        """Resolve identities, build profiles as they stood on ``as_of``, then evaluate the
        segments and record who entered and exited them.

        With ``include_late_loads`` (a backfill of history loaded later than it happened)
        identity uses every loaded record; otherwise only what was loaded by ``as_of``.
        """
        if self.privacy.has_retention():  # retention policies apply before anything is built
            self.privacy.retention(as_of, by="build")
        settings = self.profiles.settings
        late = settings.include_late_loads
        identity = self.identity.build(None if late else as_of, probabilistic=probabilistic)
        profiles = self.profiles.build(as_of, settings=settings)
        segments = self.segments.build(profiles.as_of) if self.segments.specs() else None
        return BuildReport(identity, profiles, segments)

    def tables(self) -> dict[str, int]:
        """Warehouse tables and their row counts."""
        return {name: self.engine.count(name) for name in self.engine.tables()}

    def describe(self) -> dict[str, Any]:
        """The project at a glance, for ``jingzhun validate``."""
        settings = self.project.settings
        return {
            "project": settings.name,
            "root": str(self.project.root),
            "engine": settings.engine.kind.value,
            "timezone": settings.timezone,
            "currency": settings.currency,
            "sources": {
                name: {
                    "target": spec.target.value,
                    "path": spec.path,
                    "files": len(self.project.source_paths(name)),
                }
                for name, spec in sorted(self.project.sources.items())
            },
            "warnings": self.project.warnings,
        }

    def release_engine(self) -> None:
        """Close the warehouse connection; the next use of ``engine`` opens it again."""
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    def close(self) -> None:
        """Close the warehouse and the store."""
        if self._engine is not None:
            self._engine.close()
            self._engine = None
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
