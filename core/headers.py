"""Security headers on every response: content security policy, no sniffing, referrer.

Set in ``on_response_prepare`` rather than a middleware so streamed responses (log
follows, downloads, static files) carry them too: their headers are sent before a
middleware would see the response.
"""

from __future__ import annotations

from aiohttp import web

# The pages load only their own scripts (no inline script, no eval: htmx is told not
# to evaluate attributes, see containers.html) and cannot be framed. Styles allow
# 'unsafe-inline' because xterm.js sizes and colours the terminal through <style>
# elements it creates at run time; style injection cannot run script. 'self' in
# connect-src covers the same-origin EventSource and WebSocket (CSP level 3).
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


async def add_security_headers(_request: web.Request, response: web.StreamResponse) -> None:
    # setdefault: a plugin route that needs another policy can set its own header.
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def setup_security_headers(app: web.Application) -> None:
    """Add the security headers to every response of ``app``."""
    app.on_response_prepare.append(add_security_headers)


__all__ = ["CONTENT_SECURITY_POLICY", "SECURITY_HEADERS", "setup_security_headers"]
