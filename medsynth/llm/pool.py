"""Several OpenAI-compatible endpoints serving one model, used as one logical endpoint.

Why: one vLLM/SGLang/llama.cpp server saturates long before a build of thousands of examples is done, and a
second machine (or a second GPU with its own server) doubles the rate only if requests are spread over both
and a server that dies does not stop the run. `EndpointPool` presents the interface the build loop, the
journal and the judge use from `LLMClient` (`complete`, `complete_sync`, `request_key`, `config`, `stats`,
`cache`, `mode`, `aclose`, `close`), so nothing above `medsynth.llm` knows whether one server or ten answer.

* Each request goes to the usable endpoint with the fewest requests in flight; every endpoint has its own
  `--concurrency` bound (its own `LLMClient` and semaphore), and the pool's `config.concurrency` is their sum,
  so the slot loop keeps every server busy.
* An endpoint whose request finally failed (connection refused, timeouts, 5xx or 429 after its retries) is
  set aside for a cool-down that doubles on each failure; its request goes at once to an endpoint not yet
  tried for it. A set-aside endpoint is tried again after its cool-down, or earlier when no other is left. A
  request fails only when every endpoint failed it, which the slot loop counts like any failed request.
* The response cache belongs to the pool, and its key is that of a single `LLMClient` of the same model and
  options: which endpoint served a request is not part of it, so the cache, the store and the exports are the
  same whatever the number of endpoints.
* Before a run, `probe_endpoints` asks every endpoint `GET /models`: one unreachable endpoint is a warning,
  all unreachable is a one-line `EndpointError`, and endpoints listing different models are refused unless
  mixed models are allowed (their answers would not come from one generator).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from urllib.parse import urlparse, urlunparse

import httpx

from medsynth.errors import EndpointError
from medsynth.llm.aio import BackgroundLoop
from medsynth.llm.cache import ResponseCache
from medsynth.llm.client import LLMClient, LLMConfig, LLMResponse, LLMStats, _one_line

log = logging.getLogger("medsynth.llm")

POOL_MEMBER_RETRIES = 2  # in a pool, a failing endpoint hands its request on after this many retries
COOL_DOWN = 5.0  # seconds an endpoint is set aside after its first failure; doubles per failure in a row
COOL_DOWN_CAP = 120.0
PROBE_TIMEOUT = 5.0


def public_url(url: str) -> str:
    """The URL without credentials (user:password@), query or fragment: safe for logs, stats and cards."""
    parts = urlparse(url.strip())
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunparse((parts.scheme, netloc, parts.path.rstrip("/"), "", "", ""))


def split_urls(value: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """--base-url values (repeatable, each may be a comma-separated list, as OPENAI_BASE_URL may be) as a
    list of distinct URLs in the order given."""
    items = [value] if isinstance(value, str) else list(value or [])
    urls: list[str] = []
    for item in items:
        for url in str(item).split(","):
            url = url.strip().rstrip("/")
            if url and url not in urls:
                urls.append(url)
    return urls


@dataclass
class Probe:
    """What GET /models said about one endpoint (models None: reachable but no usable list)."""

    url: str
    reachable: bool
    models: tuple[str, ...] | None = None
    owners: tuple[str, ...] = ()
    error: str | None = None


def probe_endpoint(url: str, api_key: str | None, timeout: float = PROBE_TIMEOUT) -> Probe:
    """GET {url}/models once. Only a failure to connect (or no answer in time) counts as unreachable."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        reply = httpx.get(url.rstrip("/") + "/models", headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        return Probe(url, False, error=_one_line(exc))
    try:
        data = reply.json()["data"] if reply.status_code == 200 else None
        models = tuple(sorted(str(m["id"]) for m in data)) if isinstance(data, list) else None
        owners = tuple(sorted({str(m.get("owned_by") or "") for m in data})) if models is not None else ()
    except (ValueError, KeyError, TypeError, AttributeError):
        models, owners = None, ()
    return Probe(url, True, models, owners, None if models is not None else f"GET /models: HTTP {reply.status_code}")


def check_probes(probes: list[Probe], *, allow_mixed_models: bool = False) -> None:
    """All unreachable → EndpointError; one unreachable → a warning; different model lists → EndpointError
    unless `allow_mixed_models` (then a warning)."""
    up = [p for p in probes if p.reachable]
    if not up:
        detail = "; ".join(f"{public_url(p.url)}: {p.error}" for p in probes)
        raise EndpointError(f"none of the {len(probes)} LLM endpoints answered ({detail}); start the servers or "
                            "check --base-url / OPENAI_BASE_URL")
    for p in probes:
        if not p.reachable:
            log.warning("LLM endpoint %s is unreachable (%s); carrying on with the other %d, it is tried again "
                        "later", public_url(p.url), p.error, len(up))
    served = {p.models for p in up if p.models is not None}
    if len(served) > 1:
        detail = "; ".join(f"{public_url(p.url)} serves {', '.join(p.models)}" for p in up if p.models is not None)
        if not allow_mixed_models:
            raise EndpointError(f"the LLM endpoints serve different models ({detail}); point every --base-url at a "
                                "server of the same model, or pass --allow-mixed-models")
        log.warning("the LLM endpoints serve different models (%s); going on as --allow-mixed-models says", detail)


def probe_endpoints(urls: list[str], api_key: str | None, *, allow_mixed_models: bool = False,
                    timeout: float = PROBE_TIMEOUT) -> list[Probe]:
    """Probe every endpoint once (see `check_probes` for what is refused) before a pool is built."""
    probes = [probe_endpoint(url, api_key, timeout) for url in urls]
    check_probes(probes, allow_mixed_models=allow_mixed_models)
    return probes


@dataclass
class _Member:
    """One endpoint of the pool: its client (own concurrency bound and retries) and its health."""

    client: LLMClient
    url: str
    probe: Probe | None = None
    in_flight: int = 0
    requests: int = 0  # requests this endpoint answered
    failures: int = 0  # requests it finally failed (each set it aside)
    strikes: int = 0  # failures in a row (cool-down doubles with each)
    retry_at: float = 0.0  # monotonic time before which it is set aside
    disabled: str | None = None  # why it is out for good (wrong key, unknown model)
    unreachable: bool = False  # never answered and refused connections (cleared by its first answer)

    @property
    def set_aside(self) -> bool:
        return time.monotonic() < self.retry_at


@dataclass
class PoolStats(LLMStats):
    """`LLMStats` summed over the endpoints, plus what each endpoint did (`endpoints`, credential-free URLs)."""

    endpoints: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {**super().as_dict(), "endpoints": self.endpoints}


class EndpointPool:
    """Several endpoints of one model behind the `LLMClient` interface (see the module doc)."""

    def __init__(self, configs: list[LLMConfig], cache: ResponseCache | None = None,
                 probes: list[Probe] | None = None):
        if not configs:
            raise ValueError("an endpoint pool needs at least one endpoint")
        models = {c.model for c in configs}
        if len(models) != 1:
            raise ValueError(f"an endpoint pool calls one model name, got {sorted(models)}")
        retries = min(configs[0].max_retries, POOL_MEMBER_RETRIES) if len(configs) > 1 else configs[0].max_retries
        by_url = {p.url: p for p in probes or []}
        self._members = [_Member(LLMClient(c.model_copy(update={"max_retries": retries})), c.base_url.rstrip("/"),
                                 by_url.get(c.base_url.rstrip("/"))) for c in configs]
        for m in self._members:
            if m.probe is not None and not m.probe.reachable:
                m.strikes, m.retry_at, m.unreachable = 1, time.monotonic() + COOL_DOWN, True
        urls = sorted(m.url for m in self._members)
        # The pool as one logical endpoint: the model and options of its members, their summed concurrency.
        self.config = configs[0].model_copy(update={"base_url": ",".join(urls),
                                                    "concurrency": sum(c.concurrency for c in configs)})
        self._keys = LLMClient(configs[0].model_copy())  # computes cache keys exactly as a single client would
        self.cache = cache
        self._calls = self._hits = self._errors = self._failovers = 0
        self._sync = BackgroundLoop("medsynth-pool-loop")  # for complete_sync

    def __repr__(self) -> str:
        return f"EndpointPool({[public_url(m.url) for m in self._members]}, model={self.config.model!r})"

    @property
    def members(self) -> list[LLMClient]:
        return [m.client for m in self._members]

    @property
    def probes(self) -> list[Probe]:
        """What `GET /models` said about each endpoint before the run (to make the same pool elsewhere)."""
        return [m.probe for m in self._members if m.probe is not None]

    # -- the LLMClient interface -----------------------------------------------------------------------
    async def complete(self, messages: list[dict], *, schema: dict | None = None, seed: int | None = None,
                       temperature: float | None = None, max_tokens: int | None = None) -> LLMResponse:
        """One chat completion from whichever endpoint is free; never raises for a single failed request.
        Raises EndpointError only when no endpoint can work at all (all unreachable, or all disabled)."""
        request = dict(schema=schema, seed=seed, temperature=temperature, max_tokens=max_tokens)
        key = self._keys.cache_key(messages, **request) if self.cache is not None else None
        if key is not None:
            hit = self.cache.get(key)
            if hit is not None and isinstance(hit.get("text"), str):
                self._hits += 1
                return LLMResponse(text=hit["text"], prompt_tokens=int(hit.get("prompt_tokens") or 0),
                                   completion_tokens=int(hit.get("completion_tokens") or 0), cached=True,
                                   mode=str(hit.get("mode") or ""))
        self._calls += 1
        response = await self._dispatch(messages, request)
        if response.text is None:
            self._errors += 1
        elif key is not None and self.cache is not None:
            self.cache.put(key, {"text": response.text, "prompt_tokens": response.prompt_tokens,
                                 "completion_tokens": response.completion_tokens, "mode": response.mode})
        return response

    def complete_sync(self, messages: list[dict], *, schema: dict | None = None, seed: int | None = None,
                      temperature: float | None = None, max_tokens: int | None = None) -> LLMResponse:
        """Blocking `complete`, on a private background loop (works inside Jupyter's running loop)."""
        future = asyncio.run_coroutine_threadsafe(
            self.complete(messages, schema=schema, seed=seed, temperature=temperature, max_tokens=max_tokens),
            self._sync.get())
        return future.result()

    def request_key(self, messages: list[dict], *, schema: dict | None = None, seed: int | None = None,
                    temperature: float | None = None, max_tokens: int | None = None) -> str:
        """The answer identity (no endpoint in it): the same as one `LLMClient` of this model gives."""
        return self._keys.request_key(messages, schema=schema, seed=seed, temperature=temperature,
                                      max_tokens=max_tokens)

    @property
    def stats(self) -> PoolStats:
        """A snapshot summed over the endpoints. `llm_calls` counts requests the pool sent (a request handed on
        to another endpoint counts once; each hand-over is a retry with reason "failover")."""
        s = PoolStats(llm_calls=self._calls, cache_hits=self._hits, errors=self._errors)
        for m in self._members:
            s.retries += m.client.stats.retries
            s.prompt_tokens += m.client.stats.prompt_tokens
            s.completion_tokens += m.client.stats.completion_tokens
            s.retry_reasons.update(m.client.stats.retry_reasons)
            s.endpoints.append(self._describe(m))
        s.retries += self._failovers
        if self._failovers:
            s.retry_reasons["failover"] += self._failovers
        return s

    @property
    def mode(self) -> str | None:
        """The structured mode of the first endpoint that settled one (they serve one model, so one form)."""
        return next((m.client.mode for m in self._members if m.client.mode is not None), None)

    async def aclose(self) -> None:
        """Close every endpoint's connections (of the running loop and of the background loop, if any)."""
        await self._aclose_members()
        await asyncio.to_thread(self._sync.stop, self._close_members_on)

    async def _aclose_members(self) -> None:
        for m in self._members:
            await m.client.aclose()

    def close(self) -> None:
        for m in self._members:
            m.client.close()
        self._sync.stop(self._close_members_on)

    # -- dispatch and failover -------------------------------------------------------------------------
    async def _dispatch(self, messages: list[dict], request: dict) -> LLMResponse:
        tried: set[int] = set()
        last: LLMResponse | None = None
        while True:
            member = self._pick(tried)
            if member is None:
                return last or LLMResponse(None, 0, 0, False, error="no LLM endpoint left to try", failure="endpoint")
            if tried:
                self._failovers += 1
            tried.add(id(member))
            member.in_flight += 1
            try:
                response = await member.client.complete(messages, **request)
            except EndpointError as exc:
                response = self._endpoint_error(member, exc)
            finally:
                member.in_flight -= 1
            if response.text is not None:
                self._recovered(member)
                return response
            if response.failure != "endpoint":
                return response  # this request's own failure (e.g. HTTP 400): another endpoint would fail it too
            self._set_aside(member, response.error)
            last = response

    def _pick(self, tried: set[int]) -> _Member | None:
        """The usable endpoint with the fewest in flight (relative to its bound); a set-aside one only when no
        other is left, the one whose cool-down ends first."""
        left = [m for m in self._members if id(m) not in tried and m.disabled is None]
        ready = [m for m in left if not m.set_aside]
        if ready:
            return min(ready, key=lambda m: (m.in_flight / m.client.config.concurrency, m.in_flight))
        return min(left, key=lambda m: m.retry_at) if left else None

    def _endpoint_error(self, member: _Member, exc: EndpointError) -> LLMResponse:
        """A member that cannot work. Unreachable (it never answered) is set aside like any failure; a wrong key
        or an unknown model is out for good. When every endpoint is out or unreachable and none has answered
        yet, the run stops with one line, as a single unreachable endpoint does."""
        if "cannot reach" in str(exc):
            member.unreachable = True
        else:
            member.disabled = _one_line(exc)
            log.warning("LLM endpoint %s is left out for the rest of the run: %s", public_url(member.url), exc)
        if all(m.disabled is not None for m in self._members):
            raise exc
        if all(m.disabled is not None or m.unreachable for m in self._members):
            detail = "; ".join(f"{public_url(m.url)}: {m.disabled or 'unreachable'}" for m in self._members)
            raise EndpointError(f"none of the {len(self._members)} LLM endpoints answered ({detail}); start the "
                                "servers or check --base-url / OPENAI_BASE_URL") from exc
        return LLMResponse(None, 0, 0, False, error=f"gave up after 1 attempts: endpoint: {_one_line(exc)}",
                           failure="endpoint")

    def _set_aside(self, member: _Member, why: str) -> None:
        """Set a failing endpoint aside; its other requests failing meanwhile do not lengthen the cool-down."""
        member.failures += 1
        if member.set_aside:
            return
        member.strikes += 1
        wait = min(COOL_DOWN_CAP, COOL_DOWN * 2 ** (member.strikes - 1))
        log.warning("LLM endpoint %s set aside for %.0f s (%s); the other endpoints carry on",
                    public_url(member.url), wait, why)
        member.retry_at = time.monotonic() + wait

    def _recovered(self, member: _Member) -> None:
        if member.strikes:
            log.info("LLM endpoint %s answers again", public_url(member.url))
        member.requests += 1
        member.strikes, member.retry_at, member.unreachable = 0, 0.0, False

    def _describe(self, m: _Member) -> dict:
        row: dict = {"url": public_url(m.url), "requests": m.requests, "failures": m.failures}
        if m.probe is not None and m.probe.models is not None:
            row["models"] = list(m.probe.models)
        if m.probe is not None and m.probe.owners:
            row["server"] = ", ".join(m.probe.owners)
        if m.client.mode is not None:
            row["structured"] = m.client.mode
        if m.disabled:
            row["disabled"] = m.disabled
        return row

    def _close_members_on(self, loop: asyncio.AbstractEventLoop):
        """The members' connections opened on the background loop (complete_sync), closed on it."""
        return self._aclose_members()

