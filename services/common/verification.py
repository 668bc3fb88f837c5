"""Shared shape of the invariant checks each service offers to `make verify`."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg


@dataclass(frozen=True)
class Check:
    """One invariant: a name, what it means, and SQL returning the rows that breach it."""

    name: str
    description: str
    breaches_sql: str
    #: SQL counting what the check looked at, for the report.
    scope_sql: str


@dataclass
class CheckResult:
    check: Check
    examined: int
    breaches: list[dict[str, object]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaches

    def line(self) -> str:
        mark = "ok  " if self.ok else "FAIL"
        text = f"[{mark}] {self.check.name}: {self.check.description} ({self.examined} examined)"
        for breach in self.breaches[:5]:
            text += f"\n         breach: {breach}"
        if len(self.breaches) > 5:
            text += f"\n         … and {len(self.breaches) - 5} more"
        return text


async def run_checks(conn: asyncpg.Connection, checks: list[Check]) -> list[CheckResult]:
    results = []
    for check in checks:
        examined = int(await conn.fetchval(check.scope_sql) or 0)
        rows = await conn.fetch(check.breaches_sql)
        results.append(CheckResult(check, examined, [dict(r) for r in rows]))
    return results
