"""The README and docs/ agree with the CLI: commands named exist, links lead somewhere.

The operator guide's command table lists every command and no other; every
`entropy COMMAND` the README and the docs name exists; the README stays a
short front page with the two commands CI runs.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from entropy.cli import main
from entropy.config import load_conf, option

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
GUIDE = ROOT / "docs" / "operator-guide.md"
# Pages whose every `entropy …` must exist. monitoring.md also describes
# commands still being built (issue 15); reference.md is generated from the CLI.
CHECKED = [README, *sorted(p for p in (ROOT / "docs").glob("*.md")
                           if p.name not in ("monitoring.md", "reference.md"))]  # fmt: skip


# Global options that take no value (the others are followed by one).
FLAGS = {o for p in main.params if isinstance(p, click.Option) and (p.is_flag or p.count)
         for o in p.opts}  # fmt: skip


def cli_commands(
    group: click.Group = main, path: tuple[str, ...] = ()
) -> Iterator[tuple[str, ...]]:
    """Every command that runs something (not a group), as its words."""
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if isinstance(cmd, click.Group):
            yield from cli_commands(cmd, (*path, name))
        elif cmd is not None and not cmd.hidden:
            yield (*path, name)


def named_commands(text: str) -> set[tuple[str, ...]]:
    """Every `entropy COMMAND [SUBCOMMAND]` in text's code, alternatives (a|b) expanded."""
    blocks = re.findall(r"```[^\n]*\n(.*?)```", text, flags=re.S)
    spans = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    word = re.compile(r"^[a-z][a-z-]*(\\?\|[a-z][a-z-]*)*$")
    found = set()
    for code in blocks + spans:
        for match in re.finditer(r"(?<![\w/.=-])entropy[ \t]+(.*)", code):
            tokens = match.group(1).split()
            while tokens and tokens[0].startswith(("-", "[")):  # global options and values
                tokens = tokens[
                    1 if tokens[0] in FLAGS or tokens[0][0] == "[" or "=" in tokens[0] else 2 :
                ]
            words = list(itertools.takewhile(word.match, tokens[:3]))  # `api token add`
            for path in itertools.product(*(re.split(r"\\?\|", w) for w in words)):
                found.add(command_part(path))
    return found - {()}


def command_part(path: tuple[str, ...]) -> tuple[str, ...]:
    """The command in `path`, without what follows a leaf (its arguments)."""
    group: click.Command = main
    for i, name in enumerate(path):
        if not isinstance(group, click.Group):
            return path[:i]
        group = group.commands.get(name) or click.Command(f"unknown:{name}")
    return path


def section(text: str, heading: str) -> str:
    start = text.index(f"\n{heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def test_the_operator_guide_lists_every_command_and_no_other() -> None:
    listed = named_commands(section(GUIDE.read_text(), "## Commands"))
    commands = set(cli_commands())
    assert ("script", "remove") in listed and ("engine", "run") in listed
    assert listed - commands == set(), "listed in the guide, not a command"
    assert commands - listed == set(), "a command missing from docs/operator-guide.md"


@pytest.mark.parametrize("page", CHECKED, ids=lambda p: p.name)
def test_every_command_a_page_names_exists(page: Path) -> None:
    commands = set(cli_commands())
    groups = {path[:n] for path in commands for n in range(1, len(path))}
    unknown = named_commands(page.read_text()) - commands - groups
    assert unknown == set(), f"{page.name} names commands the CLI does not have"


def test_the_check_catches_a_command_that_does_not_exist() -> None:
    named = named_commands("Run `entropy engine runn` or\n```sh\nentropy -v statuz --json\n```\n")
    assert named - set(cli_commands()) == {("engine", "runn"), ("statuz",)}


def test_the_readme_is_a_short_front_page_with_the_two_commands_ci_runs() -> None:
    text = README.read_text()
    assert len(text.splitlines()) < 150
    first, second = re.findall(r"^python3 -m venv .*$", text, flags=re.M)[:2]
    assert first.endswith("entropy --backend dir:examples/local engine run")
    assert second in (ROOT / ".ci" / "run").read_text()  # CI runs the README's test command


def anchors(page: Path) -> set[str]:
    """The anchors GitHub makes for a page's headings."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    slugs = set()
    for heading in re.findall(r"^#{1,6} (.+)$", text, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower().replace("`", "")).replace(" ", "-")
        slugs.add(slug)
    return slugs


@pytest.mark.parametrize("page", [README, *sorted((ROOT / "docs").glob("*.md"))],
                         ids=lambda p: p.name)  # fmt: skip
def test_every_link_to_a_page_of_the_project_leads_somewhere(page: Path) -> None:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists() or (
            anchor and linked.suffix == ".md" and anchor not in anchors(linked)
        ):
            broken.append(target)
    assert broken == [], f"{page.name}: links that lead nowhere"


def config_examples(page: Path) -> list[str]:
    return re.findall(r"```ini\n(.*?)```", page.read_text(), flags=re.S)


@pytest.mark.parametrize("page", [p for p in [README, *sorted((ROOT / "docs").glob("*.md"))]
                                  if config_examples(p)], ids=lambda p: p.name)  # fmt: skip
def test_every_entropy_conf_example_sets_known_options_to_values_they_take(
    page: Path, tmp_path: Path
) -> None:
    """Each example reads as written: no comment after a value (oslo.config keeps it in)."""
    for number, example in enumerate(config_examples(page)):
        path = tmp_path / f"{number}.conf"
        path.write_text(example)
        conf, group = load_conf([str(path)]), None
        for line in example.splitlines():
            if section := re.fullmatch(r"\[(\w+)\]", line.strip()):
                group = None if section[1] == "DEFAULT" else section[1]
            elif setting := re.fullmatch(r"(\w+)\s*=\s*(.*)", line.strip()):
                name, value = setting.groups()
                where = f"{page.name}: [{group or 'DEFAULT'}] {name} = {value}"
                assert "#" not in value, f"{where}: the comment would be part of the value"
                option(conf, name, group)  # an unknown option or a bad value raises


def test_the_config_example_check_catches_a_comment_after_a_value(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("```ini\n[DEFAULT]\nmax_workers = 16  # at once\n```\n")
    with pytest.raises(AssertionError, match="would be part of the value"):
        test_every_entropy_conf_example_sets_known_options_to_values_they_take(page, tmp_path)
