"""Checks across files that a journey's own validation cannot make: templates, segments and
channels named by the journeys exist and fit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from jingzhun.campaigns import Channel, MessageTemplate
from jingzhun.core import SpecError, SpecProblem
from jingzhun.journeys._spec import (
    BranchStep,
    Content,
    JourneySpec,
    ScheduleTrigger,
    SegmentTrigger,
    SendStep,
    WebhookStep,
)

# Channels a send step can use: the content channels of the delivery worker.
SEND_CHANNELS = (
    Channel.EMAIL,
    Channel.SMS,
    Channel.PUSH,
    Channel.CALL_CENTRE,
    Channel.DIRECT_MAIL,
)


def check_journeys(
    specs: Mapping[str, JourneySpec],
    templates: Mapping[str, MessageTemplate],
    segments: Iterable[str],
) -> None:
    """Raise one ``SpecError`` listing every problem of every journey: unknown templates or
    segments, a template without the part a channel needs, inline content that does not
    compile, a channel a journey cannot send on.
    """
    from jingzhun.journeys._runner import inline_template

    known_segments = set(segments)
    problems: list[SpecProblem] = []
    for spec in specs.values():
        file = spec.source_file

        def problem(field: str, message: str, file: Path = file) -> None:
            problems.append(SpecProblem(file, None, field, message))

        names = []
        if isinstance(spec.trigger, SegmentTrigger):
            names.append(("trigger.segment", spec.trigger.segment))
        if isinstance(spec.trigger, ScheduleTrigger) and spec.trigger.audience:
            names.append(("trigger.audience", spec.trigger.audience))
        if spec.audience:
            names.append(("audience", spec.audience))
        for field, name in names:
            if name not in known_segments:
                known = ", ".join(sorted(known_segments)) or "none"
                problem(field, f"no segment named '{name}'; segments: {known}")
        for i, step in enumerate(spec.steps):
            where = f"steps.{i}"
            if isinstance(step, BranchStep):
                continue
            if isinstance(step, WebhookStep):
                try:
                    inline_template(spec, step.id, _webhook_content(step))
                except SpecError as exc:
                    problems.extend(exc.problems)
                continue
            if not isinstance(step, SendStep):
                continue
            channel = step.send.channel
            if channel not in SEND_CHANNELS:
                allowed = ", ".join(c.value for c in SEND_CHANNELS)
                hint = " (use a webhook step)" if channel is Channel.WEBHOOK else ""
                problem(f"{where}.send.channel", f"a journey sends on {allowed}{hint}")
                continue
            if step.send.template is not None:
                template = templates.get(step.send.template)
                if template is None:
                    known = ", ".join(sorted(templates)) or "none (add templates/NAME.yml)"
                    problem(
                        f"{where}.send.template",
                        f"no template '{step.send.template}'; templates: {known}",
                    )
                    continue
            else:
                assert step.send.content is not None
                try:
                    template = inline_template(spec, step.id, step.send.content)
                except SpecError as exc:
                    problems.extend(
                        SpecProblem(p.file, p.line, f"{where}.send.content.{p.field}", p.message)
                        for p in exc.problems
                    )
                    continue
            needs = "email" if channel is Channel.EMAIL else "sms"
            if needs not in template.channels:
                part = "a subject and html or text" if needs == "email" else "an sms part"
                problem(f"{where}.send", f"{channel.value} needs {part}; {template.name} lacks it")
    if problems:
        raise SpecError(problems)


def _webhook_content(step: WebhookStep) -> Content:
    return Content(sms=step.webhook.text or step.webhook.event)
