"""A small local stand-in for the Hugging Face Hub (stdlib only, 127.0.0.1), enough for the real
``huggingface_hub`` client: create a repo, commit files (uploaded inline, no LFS/xet), list and
download them. Model, processor and model-card pushes and ``from_pretrained("user/repo")`` run
against it unchanged once a process has

    HF_ENDPOINT=http://127.0.0.1:PORT  HF_TOKEN=hf_fake  HF_HUB_DISABLE_XET=1  HF_HUB_OFFLINE=0

(``huggingface_hub`` reads them when it is imported, so the client runs in a child process).
Repositories live as plain folders under ``root/{model,dataset}/{owner}/{name}``; weights and
Parquet files take the LFS path (batch API, then an upload), the rest is committed inline.

    with FakeHub(tmp_path) as hub:
        subprocess.run([...], env={**os.environ, **hub.env(cache=tmp_path / "hf_home")})
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

SHA = "0" * 40
LFS = (".safetensors", ".parquet", ".bin")


class _Handler(BaseHTTPRequestHandler):
    root: Path  # set on the subclass a FakeHub makes

    def log_message(self, *args):  # quiet
        pass

    def _send(self, code: int, body=b"", headers: dict | None = None, ctype: str = "application/json"):
        body = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
        self.send_response(code)
        for key, value in {"Content-Type": ctype, "Content-Length": str(len(body)), **(headers or {})}.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while size := int(self.rfile.readline().strip() or b"0", 16):
                data += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
            return data
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def _repo(self, kind: str, repo_id: str) -> Path:
        return self.root / kind / repo_id

    def _files(self, base: Path) -> list[str]:
        return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file())

    @staticmethod
    def _entry(base: Path, path: str) -> dict:
        target = base / path
        if target.is_dir():
            return {"type": "directory", "path": path, "oid": SHA}
        return {"type": "file", "path": path, "oid": SHA, "size": target.stat().st_size}

    def do_POST(self):
        path = self.path.split("?")[0]
        if path == "/api/validate-yaml":  # README metadata check of create_commit
            self._body()
            return self._send(200, {"warnings": []})
        if path == "/api/repos/create":
            request = json.loads(self._body())
            kind = request.get("type") or "model"
            repo_id = f"{request.get('organization') or 'me'}/{request['name']}"
            self._repo(kind, repo_id).mkdir(parents=True, exist_ok=True)
            return self._send(200, {"url": f"http://{self.headers['Host']}/{repo_id}", "name": repo_id})
        if path.endswith(".git/info/lfs/objects/batch"):  # LFS: where to upload each object
            objects = json.loads(self._body())["objects"]
            host = f"http://{self.headers['Host']}"
            return self._send(
                200,
                {
                    "transfer": "basic",
                    "objects": [
                        {
                            "oid": o["oid"],
                            "size": o["size"],
                            "actions": {"upload": {"href": f"{host}/lfs-upload/{o['oid']}"}},
                        }
                        for o in objects
                    ],
                },
                ctype="application/vnd.git-lfs+json",
            )
        m = re.match(r"/api/(models|datasets)/(.+?)/paths-info/", path)
        if m:  # form-encoded paths=...&paths=...
            base = self._repo(m.group(1)[:-1], m.group(2))
            wanted = parse_qs(self._body().decode()).get("paths", [])
            return self._send(200, [self._entry(base, p) for p in wanted if (base / p).exists()])
        m = re.match(r"/api/(models|datasets)/(.+?)/(preupload|commit)/([^/]+)$", path)
        if not m:
            return self._send(404, {"error": f"fake hub: no POST {path}"})
        kind, repo_id, operation = m.group(1)[:-1], m.group(2), m.group(3)
        body = self._body()
        if operation == "preupload":  # weights and Parquet go through LFS (as on the Hub), the rest inline
            files = json.loads(body)["files"]
            return self._send(
                200,
                {
                    "files": [
                        {
                            "path": f["path"],
                            "shouldIgnore": False,
                            "uploadMode": "lfs" if f["path"].endswith(LFS) else "regular",
                        }
                        for f in files
                    ],
                    "commitOid": SHA,
                },
            )
        base = self._repo(kind, repo_id)
        for line in body.decode().splitlines():  # NDJSON commit payload
            item = json.loads(line)
            if item["key"] == "file":
                target = base / item["value"]["path"]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(base64.b64decode(item["value"]["content"]))
            elif item["key"] == "lfsFile":
                target = base / item["value"]["path"]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes((self.root / "lfs" / item["value"]["oid"]).read_bytes())
            elif item["key"] == "deletedFile":
                (base / item["value"]["path"]).unlink(missing_ok=True)
        return self._send(
            200, {"commitUrl": f"http://{self.headers['Host']}/{repo_id}/commit/{SHA}", "commitOid": SHA}
        )

    def do_GET(self):
        path = self.path.split("?")[0]
        m = re.match(r"/api/(models|datasets)/([^/]+/[^/]+)(/tree/[^/]+(?:/(.*))?|/revision/.*)?$", path)
        if m:
            kind, repo_id, tail, sub = m.group(1)[:-1], m.group(2), m.group(3) or "", m.group(4) or ""
            base = self._repo(kind, repo_id)
            if not base.is_dir():
                return self._send(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
            files = self._files(base)
            if tail.startswith("/tree"):  # ?recursive=True lists the whole sub-tree, else one level
                sub = unquote(sub)
                if sub and not (base / sub).exists():
                    return self._send(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"})
                recursive = parse_qs(urlsplit(self.path).query).get("recursive", ["False"])[0].lower() == "true"
                found = (base / sub).rglob("*") if recursive else (base / sub).iterdir()
                return self._send(200, [self._entry(base, str(p.relative_to(base))) for p in sorted(found)])
            return self._send(
                200,
                {
                    "id": repo_id,
                    "sha": SHA,
                    "siblings": [{"rfilename": f} for f in files],
                    "private": False,
                    "downloads": 0,
                    "likes": 0,
                    "tags": [],
                },
            )
        m = re.match(r"/(?:(datasets)/)?(.+?)/resolve/([^/]+)/(.+)$", path)
        if m:
            kind = "dataset" if m.group(1) else "model"
            file = self._repo(kind, m.group(2)) / m.group(4)
            if file.is_file():
                data = file.read_bytes()
                return self._send(
                    200,
                    data,
                    {"X-Repo-Commit": SHA, "ETag": f'"{len(data)}-{hash(data)}"'},
                    ctype="application/octet-stream",
                )
            return self._send(
                404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": SHA}
            )
        return self._send(404, {"error": f"fake hub: no GET {path}"}, {"X-Error-Code": "RepoNotFound"})

    do_HEAD = do_GET

    def do_PUT(self):
        m = re.match(r"/lfs-upload/([0-9a-f]{64})$", self.path)
        if not m:
            return self._send(404, {"error": f"fake hub: no PUT {self.path}"})
        (self.root / "lfs").mkdir(parents=True, exist_ok=True)
        (self.root / "lfs" / m.group(1)).write_bytes(self._body())
        return self._send(200, {})


class FakeHub:
    """The server on a free port of 127.0.0.1, in a daemon thread, while the ``with`` block runs."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        handler = type("Handler", (_Handler,), {"root": self.root})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def env(self, cache: str | os.PathLike) -> dict[str, str]:
        """Environment for a client process: this endpoint, a fake token, its own Hub cache."""
        return {
            "HF_ENDPOINT": self.url,
            "HF_TOKEN": "hf_fake",
            "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_OFFLINE": "0",
            "HF_HOME": str(cache),
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        }

    def files(self, repo_id: str, kind: str = "model") -> list[str]:
        base = self.root / kind / repo_id
        return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file())
