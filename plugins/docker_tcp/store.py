"""Engine rows in the database: create, update, delete, and decrypted configs."""

from __future__ import annotations

from typing import Any

from archnest import BadRequest, Conflict, Database, NotFound, SecretBox, iso_utc, utcnow
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from .client import EngineConfig, check_tls_scheme, validate_url
from .models import DockerEngine, DockerTcpFlag
from .tlsconf import TlsMaterialError, build_ssl_context

NAME_MAX = 128


def public_view(row: DockerEngine) -> dict[str, Any]:
    """What the API shows of an engine: never the key or certificate, only their presence."""
    return {
        "id": row.id,
        "name": row.name,
        "url": row.url,
        "host_id": f"docker:{row.id}",
        "tls": {
            "verify": row.tls_verify,
            "has_ca": bool(row.tls_ca),
            "has_cert": bool(row.tls_cert_enc),
            "has_key": bool(row.tls_key_enc),
        },
        "created_at": iso_utc(row.created_at),
        "updated_at": iso_utc(row.updated_at),
    }


class EngineStore:
    def __init__(self, db: Database, box: SecretBox):
        self.db = db
        self.box = box

    async def all(self) -> list[DockerEngine]:
        async with self.db.session() as s:
            return list((await s.exec(select(DockerEngine).order_by(DockerEngine.id))).all())

    async def get(self, engine_id: int) -> DockerEngine:
        async with self.db.session() as s:
            row = await s.get(DockerEngine, engine_id)
        if row is None:
            raise NotFound(f"unknown docker host {engine_id}", code="unknown_host")
        return row

    def config(self, row: DockerEngine) -> EngineConfig:
        assert row.id is not None
        return EngineConfig(
            id=row.id,
            name=row.name,
            url=row.url,
            tls_verify=row.tls_verify,
            tls_ca=row.tls_ca,
            tls_cert=self.box.decrypt(row.tls_cert_enc),
            tls_key=self.box.decrypt(row.tls_key_enc),
        )

    async def create(self, body: dict[str, Any]) -> DockerEngine:
        row = DockerEngine(name="", url="")
        self._apply(row, body, creating=True)
        return await self._save(row)

    async def preview(self, body: dict[str, Any], engine_id: int | None = None) -> EngineConfig:
        """The settings a create (``engine_id`` None) or an update of ``engine_id`` with
        ``body`` would store, checked the same way, with nothing saved: what "Test
        connection" connects with. A name is not needed to test a new engine."""
        if engine_id is None:
            row = DockerEngine(id=0, name="", url="")
            body = {"name": "new engine"} | body
        else:
            stored = await self.get(engine_id)
            # A copy: the stored row stays as it is whatever the test changes.
            row = DockerEngine.model_validate(stored.model_dump())
        self._apply(row, body, creating=engine_id is None)
        return self.config(row)

    async def update(self, engine_id: int, body: dict[str, Any]) -> DockerEngine:
        row = await self.get(engine_id)
        self._apply(row, body, creating=False)
        row.updated_at = utcnow()
        return await self._save(row)

    async def delete(self, engine_id: int) -> DockerEngine:
        async with self.db.session() as s:
            row = await s.get(DockerEngine, engine_id)
            if row is None:
                raise NotFound(f"unknown docker host {engine_id}", code="unknown_host")
            await s.delete(row)
            await s.commit()
            return row

    async def _save(self, row: DockerEngine) -> DockerEngine:
        async with self.db.session() as s:
            s.add(row)
            try:
                await s.commit()
            except IntegrityError:
                raise Conflict(f"a docker host named {row.name!r} already exists") from None
            await s.refresh(row)
            return row

    def _apply(self, row: DockerEngine, body: dict[str, Any], *, creating: bool) -> None:
        # ``body``: the fields a request sent, already of the right types (the routes'
        # EngineCreate/EngineUpdate); what is left here is what a schema cannot say.
        # Every refusal names its field, so a form shows it next to that field.
        if creating or "name" in body:
            name = body["name"].strip()
            if not name:
                raise BadRequest(
                    f"name must be a non-empty string of at most {NAME_MAX} chars", field="name"
                )
            row.name = name
        if creating or "url" in body:
            try:
                row.url = validate_url(body["url"])
            except ValueError as exc:
                raise BadRequest(str(exc), field="url") from None
        tls = body.get("tls")
        if tls is not None:
            self._apply_tls(row, tls)
        # Checked on the result, so a PATCH of only the url or only the tls is caught too.
        try:
            check_tls_scheme(row.url, bool(row.tls_ca or row.tls_cert_enc or row.tls_key_enc))
        except ValueError as exc:
            raise BadRequest(str(exc), code="tls_needs_https", field="url") from None
        if row.tls_ca or row.tls_cert_enc or row.tls_key_enc:
            # Refuse material that cannot work now rather than at the first request.
            try:
                build_ssl_context(
                    row.tls_ca,
                    self.box.decrypt(row.tls_cert_enc),
                    self.box.decrypt(row.tls_key_enc),
                    row.tls_verify,
                )
            except TlsMaterialError as exc:
                raise BadRequest(f"tls: {exc}", field=exc.field) from None
            except ValueError as exc:
                raise BadRequest(f"tls: {exc}", field="tls") from None

    def _apply_tls(self, row: DockerEngine, tls: dict[str, Any]) -> None:
        if "verify" in tls:
            row.tls_verify = tls["verify"]
        # A field that is absent keeps its stored value; "" or null clears it.
        if "ca" in tls:
            row.tls_ca = tls["ca"] or None
        if "cert" in tls:
            row.tls_cert_enc = self.box.encrypt(tls["cert"] or None)
        if "key" in tls:
            row.tls_key_enc = self.box.encrypt(tls["key"] or None)

    async def flag(self, name: str) -> str | None:
        async with self.db.session() as s:
            row = await s.get(DockerTcpFlag, name)
            return row.value if row else None

    async def set_flag(self, name: str, value: str) -> None:
        async with self.db.session() as s:
            row = await s.get(DockerTcpFlag, name) or DockerTcpFlag(name=name)
            row.value = value
            s.add(row)
            await s.commit()
