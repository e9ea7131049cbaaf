"""Agent mappings as operators handle them: CSV files, verification against the two
directories, and matching Zendesk agents to Teamwork people by e-mail. Pure: the callers
fetch the users and people; nothing here does I/O, so every rule is testable alone.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from zdsync.people import Person, User

CSV_COLUMNS = ("zendesk_user_id", "teamwork_person_id")


class CsvError(ValueError):
    """A mappings CSV that cannot be applied; ``problems`` lists every bad line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _positive_int(text: str) -> int | None:
    text = text.strip()
    if not re.fullmatch(r"[0-9]{1,18}", text):  # str.isdigit() also accepts "²"
        return None
    return int(text) or None


SEMICOLONS = ("the file seems to separate its columns with ';': zdsync reads comma-separated "
              "files (save it as CSV with commas)")


def parse_csv(text: str) -> dict[int, int]:
    """``zendesk_user_id,teamwork_person_id`` rows (header required, other columns such as
    names ignored, blank lines skipped) -> mappings. Every row is checked before anything
    is returned, so one bad row rejects the file and the error names all of them."""
    pairs, _, problems = parse_csv_lines(text)
    if problems:
        raise CsvError(problems)
    return pairs


def parse_csv_lines(text: str) -> tuple[dict[int, int], dict[int, int], list[str]]:
    """The valid mappings, the line of each (by Zendesk user id), and every problem of the
    other lines: ``users import`` verifies the valid rows and reports both together. A
    file that uses ';' between columns gets a hint saying so."""
    text = text.removeprefix("\ufeff")  # spreadsheets often save UTF-8 with a BOM
    rows = list(csv.reader(io.StringIO(text)))
    header_at = next((n for n, row in enumerate(rows) if any(c.strip() for c in row)), None)
    if header_at is None:
        return {}, {}, [f"the file is empty; expected the header {','.join(CSV_COLUMNS)}"]
    header = [c.strip().lower() for c in rows[header_at]]
    semicolons = [SEMICOLONS] if any(";" in c for c in header) else []
    missing = [c for c in CSV_COLUMNS if c not in header]
    if missing:
        return {}, {}, [f"line {header_at + 1}: the header must name the columns "
                        f"{','.join(CSV_COLUMNS)} (missing {', '.join(missing)})", *semicolons]
    zi, ti = header.index(CSV_COLUMNS[0]), header.index(CSV_COLUMNS[1])
    pairs: dict[int, int] = {}
    first_line: dict[int, int] = {}
    problems: list[str] = []
    for n, row in enumerate(rows[header_at + 1:], start=header_at + 2):
        if not any(c.strip() for c in row):
            continue
        if len(row) <= max(zi, ti):
            problems.append(f"line {n}: expected {len(header)} columns, got {len(row)}: "
                            f"{','.join(row)!r}")
            semicolons = semicolons or ([SEMICOLONS] if ";" in ",".join(row) else [])
            continue
        zendesk, person = _positive_int(row[zi]), _positive_int(row[ti])
        bad = [f"{name} {raw.strip()!r} is not a positive integer"
               for name, raw, value in ((CSV_COLUMNS[0], row[zi], zendesk),
                                        (CSV_COLUMNS[1], row[ti], person)) if value is None]
        if bad:
            problems.append(f"line {n}: " + "; ".join(bad))
            continue
        assert zendesk is not None and person is not None
        if zendesk in first_line:
            problems.append(f"line {n}: Zendesk user {zendesk} is already mapped on line "
                            f"{first_line[zendesk]}")
            continue
        first_line[zendesk] = n
        pairs[zendesk] = person
    if not pairs and not problems:
        problems.append("the file has a header but no mappings")
    return pairs, first_line, problems + (semicolons if problems else [])


def read_mappings_file(path: str) -> dict[int, int]:
    """The mappings of a ``[users] file``: raises OSError, UnicodeDecodeError or CsvError."""
    with open(path, encoding="utf-8") as fh:
        return parse_csv(fh.read())


def render_csv(pairs: Mapping[int, int]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for zendesk, person in sorted(pairs.items()):
        writer.writerow((zendesk, person))
    return out.getvalue()


def verify(pairs: Mapping[int, int], users: Mapping[int, User],
           members: Mapping[int, Person], people: Mapping[int, Person],
           project_id: int, lines: Mapping[int, int] | None = None) -> list[str]:
    """Every reason a mapping would not work, one line per problem.

    ``users``: the Zendesk users found among the pairs' ids; ``members``: the Teamwork
    people found on the project; ``people``: those found in the account at all (to tell
    "not on the project" from "does not exist"). ``lines``: the file line of each pair
    (by Zendesk user id), named before each of its problems, in the file's order.
    """
    where = lines or {}
    problems = []
    for zendesk, person in sorted(pairs.items(), key=lambda pair: (where.get(pair[0], 0),
                                                                   pair[0])):
        start = len(problems)
        user = users.get(zendesk)
        if user is None:
            problems.append(f"Zendesk user {zendesk} does not exist")
        elif not user.is_agent:
            problems.append(f"Zendesk user {zendesk} ({user.display}) is "
                            f"{_article(user.role)}, not an agent or admin: "
                            "only agents are assigned tickets")
        elif not user.active:
            problems.append(f"Zendesk user {zendesk} ({user.display}) is deactivated")
        if person not in members and person in people:
            problems.append(f"Teamwork person {person} ({people[person].display}) is "
                            f"not on project {project_id}: add them to the project first")
        elif person not in members:
            problems.append(f"Teamwork person {person} does not exist")
        if zendesk in where:
            problems[start:] = [f"line {where[zendesk]}: {p}" for p in problems[start:]]
    return problems


def _article(role: object) -> str:
    text = str(role or "unknown role")
    return f"an {text}" if text[:1] in "aeiou" else f"a {text}"


@dataclass(frozen=True)
class Proposal:
    """One agent's outcome of e-mail matching; ``status`` is new, same, kept or
    unmatched (``kept``: mapped by hand to another person; e-mail matching never
    overrides a mapping an operator made)."""

    zendesk_user_id: int
    name: str | None
    email: str
    status: str
    person_id: int | None = None
    person_name: str | None = None
    mapped_to: int | None = None
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def match_by_email(agents: Iterable[User], people: Iterable[Person],
                   current: Mapping[int, int]) -> list[Proposal]:
    """Pair each Zendesk agent with the Teamwork person of the same e-mail address
    (case-insensitive, surrounding blanks ignored), ordered by Zendesk user id.

    An address shared by several project people matches none of them: guessing would
    send one person's tickets to another.
    """
    by_email: dict[str, list[Person]] = {}
    for person in people:
        email = person.email.strip().lower()
        if email:
            by_email.setdefault(email, []).append(person)
    out = []
    for agent in sorted(agents, key=lambda a: a.id):
        if not agent.is_agent:
            continue
        email = agent.email.strip()
        base = dict(zendesk_user_id=agent.id, name=agent.display, email=email,
                    mapped_to=current.get(agent.id))
        found = by_email.get(email.lower(), []) if email else []
        if not agent.active:
            out.append(Proposal(**base, status="unmatched", reason="deactivated in Zendesk"))
            continue
        if len(found) != 1:
            reason = (f"{len(found)} Teamwork people share this e-mail" if found else
                      "no Teamwork person on the project has this e-mail" if email else
                      "no e-mail address")
            out.append(Proposal(**base, status="unmatched", reason=reason))
            continue
        pid = found[0].id
        status = ("new" if agent.id not in current else "same" if current[agent.id] == pid
                  else "kept")
        out.append(Proposal(**base, status=status, person_id=pid,
                            person_name=found[0].display))
    return out
