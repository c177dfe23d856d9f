"""rag keys and rag audit: the server's API keys and its audit log."""

from __future__ import annotations

from pathlib import Path

import click

from rag.cli.common import (
    EXIT_FATAL,
    Ctx,
    echo_json,
    errors,
    fail,
    index_option,
)


@click.group()
def keys() -> None:
    """API keys of the HTTP server (stored hashed in the index; in PostgreSQL with index.backend = "postgres")."""


@keys.command("create")
@index_option
@click.option("--name", required=True, help="Who or what the key is for.")
@click.option("--role", type=click.Choice(["reader", "admin"]), default="reader", show_default=True,
              help="admin may also upload and delete documents.")
@click.option("--tenant", "tenants", multiple=True, required=True,
              help="Tenant whose documents the key may read (repeatable); '*' for every document.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def keys_create(obj: Ctx, index_dir: Path | None, name: str, role: str, tenants: tuple[str, ...],
                as_json: bool) -> None:
    """Create a key and print it once (only its hash is stored)."""
    from rag.factory import open_access

    with errors(as_json):
        store = open_access(obj.config, index_dir)
        new = store.create_key(name, role, list(tenants))
        store.close()
    if as_json:
        echo_json({**new.key.to_dict(), "key": new.token})
        return
    click.echo(f"created {new.key.id} ({new.key.role}, tenants: {', '.join(new.key.tenants)})", err=True)
    click.echo("the key is shown only now; keep it safe:", err=True)
    click.echo(new.token)


@keys.command("list")
@index_option
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def keys_list(obj: Ctx, index_dir: Path | None, as_json: bool) -> None:
    """The keys (never their secrets), revoked ones included."""
    import time

    from rag.factory import open_access

    with errors(as_json):
        store = open_access(obj.config, index_dir)
        found = store.list_keys()
        store.close()
    if as_json:
        echo_json({"keys": [k.to_dict() for k in found]})
        return
    for k in found:
        state = "revoked " + time.strftime("%Y-%m-%d %H:%M", time.localtime(k.revoked_at)) if k.revoked_at else "active"
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(k.created_at))
        click.echo(f"{k.id}  {k.role:<6}  {','.join(k.tenants):<20}  {created}  {state}  {k.name}")


@keys.command("revoke")
@click.argument("key_id")
@index_option
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def keys_revoke(obj: Ctx, key_id: str, index_dir: Path | None, as_json: bool) -> None:
    """Revoke a key at once (running servers refuse it from the next request)."""
    from rag.factory import open_access

    with errors(as_json):
        store = open_access(obj.config, index_dir)
        done = store.revoke(key_id)
        store.close()
    if not done:
        fail(f"no active key {key_id!r} (see: rag keys list)", as_json, EXIT_FATAL)
    if as_json:
        echo_json({"revoked": key_id})
        return
    click.echo(f"revoked {key_id}")


@click.command()
@index_option
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1), help="Rows to show.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: its rows, newest first.")
@click.pass_obj
def audit(obj: Ctx, index_dir: Path | None, limit: int, as_json: bool) -> None:
    """The server's audit log: who asked what, the sources cited, refusals and status, newest first."""
    import time

    from rag.factory import open_access

    with errors(as_json):
        store = open_access(obj.config, index_dir)
        rows = store.audit(limit)
        store.close()
    if as_json:
        echo_json({"rows": [r.to_dict() for r in rows]})
        return
    for r in rows:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.at))
        refused = " refused" if r.refused else ""
        click.echo(f"{when}  {r.status}  {r.key_id or '-':<16}  {r.route}{refused}")
        if r.question:
            click.echo(f"    question: {' '.join(r.question.split())[:200]}")
        if r.sources:
            click.echo(f"    sources:  {', '.join(r.sources)}")


