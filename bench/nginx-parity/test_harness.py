"""Unit tests of the harness's own parts: `python3 -m unittest discover -s bench/nginx-parity`.

The end-to-end check of the harness is `run --self-check` (nginx against
nginx: every probe equal); these cover the pure functions it is built from.
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import compare  # noqa: E402
import docroot  # noqa: E402
import nginxconf  # noqa: E402
import probes  # noqa: E402
import rewrite  # noqa: E402

SITE = r'''
upstream app { server 10.0.0.5:8080 weight=2; server unix:/run/app.sock backup; }
server {
    listen 80;
    listen [::]:80;
    listen 443 ssl http2 default_server;
    server_name example.com *.example.com;
    ssl_certificate /etc/letsencrypt/live/example.com/fullchain.pem;
    ssl_certificate_key "/etc/letsencrypt/live/example.com/privkey.pem";
    resolver 1.1.1.1;
    add_header X-Frame-Options "DENY" always; # a comment
    location = /healthz { return 200 'ok'; }
    location ~* ^/img/.*\.(png|jpg)$ { proxy_pass http://app; }
    location /api/ { proxy_pass http://127.0.0.1:3000/v1/; proxy_set_header X-Real-IP $remote_addr; }
    location ~ "^/a{2}$" { return 404; }
    location / { set $t "${host}x"; proxy_pass http://app; }
}
'''


class ParseTests(unittest.TestCase):
    def test_round_trip_keeps_every_directive(self):
        tree = nginxconf.parse(SITE)
        again = nginxconf.parse(nginxconf.serialise(tree))
        self.assertEqual(nginxconf.serialise(tree), nginxconf.serialise(again))
        names = [d.name for d, _ in nginxconf.walk(again)]
        self.assertIn("add_header", names)
        self.assertEqual(names.count("location"), 5)

    def test_quotes_braces_in_words_and_variables(self):
        tree = nginxconf.parse(SITE)
        locs = nginxconf.locations(tree[1].block)
        self.assertIn(("~", "^/a{2}$"), locs)  # a quoted regex with braces
        self.assertIn(("=", "/healthz"), locs)
        sets = [d for d, _ in nginxconf.walk(tree) if d.name == "set"]
        self.assertEqual(sets[0].values(), ["$t", "${host}x"])

    def test_errors(self):
        for bad in ("server {", "listen 80", "}", "a 'b;"):
            with self.assertRaises(nginxconf.ParseError):
                nginxconf.parse(bad)

    def test_site_file_is_wrapped(self):
        main, wrapped = nginxconf.as_main(nginxconf.parse(SITE))
        self.assertTrue(wrapped)
        self.assertEqual([d.name for d in main], ["events", "http"])


class RewriteTests(unittest.TestCase):
    def setUp(self):
        self.main, _ = nginxconf.as_main(nginxconf.parse(SITE))
        ports = iter(range(40000, 40100))
        self.up = rewrite.Upstreams(lambda: next(ports))
        self.notes = []
        rewrite.rewrite(self.main, listen_map={80: 50080, 443: 50443}, upstreams=self.up,
                        cert="/t/cert.pem", key="/t/key.pem", tmpdir="/t", notes=self.notes)
        self.text = nginxconf.serialise(self.main)

    def test_listens_collapse_to_loopback_ports(self):
        srv = nginxconf.servers(self.main)[0]
        listens = [d.args for d in srv.block if d.name == "listen"]
        self.assertEqual(listens, [["127.0.0.1:50080"], ["127.0.0.1:50443", "ssl", "http2", "default_server"]])

    def test_upstreams_certificates_and_outside_world(self):
        self.assertIn("server 127.0.0.1:40000 weight=2;", self.text)
        self.assertIn("server 127.0.0.1:40000 backup;", self.text)
        self.assertIn("proxy_pass http://127.0.0.1:40001/v1/;", self.text)
        self.assertEqual(self.up.labels, {40000: "app", 40001: "127.0.0.1:3000"})
        self.assertIn("ssl_certificate /t/cert.pem;", self.text)
        self.assertIn("ssl_certificate_key /t/key.pem;", self.text)
        self.assertNotIn("resolver", self.text)
        self.assertIn("proxy_temp_path", self.text)

    def test_the_importer_side_gets_no_additions(self):
        main, _ = nginxconf.as_main(nginxconf.parse(SITE))
        rewrite.rewrite(main, listen_map={80: 1, 443: 2}, upstreams=self.up, cert="c", key="k",
                        tmpdir="/t", notes=[], for_nginx=False)
        text = nginxconf.serialise(main)
        self.assertNotIn("temp_path", text)
        self.assertNotIn("access_log", text)


class VariableUpstreamTests(unittest.TestCase):
    CONF = r'''
    server { listen 80; server_name a;
      set $app hass; set $port 8123; set $proto http;
      location / { proxy_pass $proto://$app:$port; }
      location /b/ { set $bar 10.0.0.1; proxy_pass http://$bar:8081$request_uri; }
      location /c/ { set $target "http://backend:9000/x"; proxy_pass $target; }
      location /d/ { proxy_pass http://$nope; }
    }
    server { listen 80; server_name b; set $app other; set $port 9; set $proto https;
      location / { proxy_pass $proto://$app:$port; } }
    '''

    def test_the_sets_behind_a_variable_upstream_point_at_the_reflector(self):
        main, _ = nginxconf.as_main(nginxconf.parse(self.CONF))
        ports = iter(range(100, 200))
        up = rewrite.Upstreams(lambda: next(ports))
        notes = []
        rewrite.rewrite(main, listen_map={80: 8000}, upstreams=up, cert="c", key="k", tmpdir="/t",
                        notes=notes, for_nginx=False)
        text = nginxconf.serialise(main)
        self.assertEqual(up.ports, {("hass:8123", False): 100, ("10.0.0.1:8081", False): 101,
                                    ("backend:9000", False): 102, ("other:9", True): 103})
        for want in ("set $app 127.0.0.1;", "set $port 100;", "proxy_pass $proto://$app:$port;",
                     "proxy_pass http://$bar:101$request_uri;", "set $target http://127.0.0.1:102/x;",
                     "set $port 103;"):
            self.assertIn(want, text)
        self.assertEqual(len(notes), 1)
        self.assertIn("$nope", notes[0])

    def test_url_split_follows_nginx(self):
        self.assertEqual(rewrite.split_url("http://api$request_uri"), ("http", "api", "$request_uri"))
        self.assertEqual(rewrite.split_url("$p://$a:$b/x"), ("$p", "$a:$b", "/x"))
        self.assertEqual(rewrite.split_url("http://[::1]:8090/"), ("http", "[::1]:8090", "/"))
        self.assertIsNone(rewrite.split_url("$target"))


class ProbeTests(unittest.TestCase):
    def test_sample_paths_match_their_regex(self):
        self.assertEqual(probes.sample_path(r"^/img/.*\.(png|jpg)$", True), "/img/a.png")
        self.assertEqual(probes.sample_path(r"^/u/(?<name>[^/]+)/?$", False), "/u/a")
        self.assertEqual(probes.sample_path(r"\.php$", False), "/parity/.php")
        self.assertIsNone(probes.sample_path(r"^/(?!x)", False))  # look-ahead: skipped

    def test_sample_hosts(self):
        self.assertEqual(probes.sample_host("*.example.com"), "wild.example.com")
        self.assertEqual(probes.sample_host("www.example.*"), "www.example.com")
        self.assertEqual(probes.sample_host(".example.org"), "example.org")
        self.assertEqual(probes.sample_host(r"~^(?<sub>\w+)\.example\.net$"), "a.example.net")
        self.assertIsNone(probes.sample_host("_"))
        self.assertIsNone(probes.sample_host("${DOMAIN}"))

    def test_plan_covers_names_paths_queries_schemes_and_websocket(self):
        main, _ = nginxconf.as_main(nginxconf.parse(SITE))
        plan = probes.plan(main, [])
        labels = {probes.probe_label(p) for p in plan}
        for want in ("http://example.com/healthz", "https://wild.example.com/api/x?" + probes.QUERY,
                     "ws https://example.com/img/a.png", "http://parity-unknown.invalid/"):
            self.assertIn(want, labels)


class RealIpProbeTests(unittest.TestCase):
    def test_a_real_ip_config_gets_spoofing_probes_in_its_header(self):
        conf = "server { listen 80; server_name a; set_real_ip_from 10.0.0.0/8; " \
               "real_ip_header CF-Connecting-IP; location / { proxy_pass http://b; } }"
        main, _ = nginxconf.as_main(nginxconf.parse(conf))
        spoofed = [p for p in probes.plan(main, []) if p.spoof]
        self.assertIn("CF-Connecting-IP: 203.0.113.7 http://a/", {probes.probe_label(p) for p in spoofed})
        self.assertFalse(any(p.ws or "?" in p.path for p in spoofed))
        plain = "server { listen 80; server_name a; location / { proxy_pass http://b; } }"
        main, _ = nginxconf.as_main(nginxconf.parse(plain))
        self.assertFalse(any(p.spoof for p in probes.plan(main, [])))


class ConditionHeaderProbeTests(unittest.TestCase):
    def test_headers_an_if_tests_are_sent_with_values_that_flip_it(self):
        conf = "server { listen 80; server_name a; location / { proxy_pass http://b; " \
               "if ($http_x_forwarded_proto = 'http') { return 301 https://$host$request_uri; } " \
               "if ($http_user_agent ~* ^(curl|wget)/) { return 403; } " \
               "if ($http_x_flag) { return 404; } } }"
        main, _ = nginxconf.as_main(nginxconf.parse(conf))
        labels = {probes.probe_label(p) for p in probes.plan(main, [])}
        for want in ("X-Forwarded-Proto: http http://a/", "User-Agent: curl/ http://a/",
                     "X-Flag: 1 http://a/"):
            self.assertIn(want, labels)


class MethodProbeTests(unittest.TestCase):
    def test_methods_the_config_tells_apart_are_probed(self):
        conf = "server { listen 80; server_name a; location /v1/ { proxy_pass http://b; " \
               "if ($request_method = 'OPTIONS') { return 204; } } }"
        main, _ = nginxconf.as_main(nginxconf.parse(conf))
        labels = {probes.probe_label(p) for p in probes.plan(main, [])}
        self.assertIn("OPTIONS http://a/v1/", labels)
        self.assertNotIn("OPTIONS ws http://a/v1/", labels)
        plain = "server { listen 80; server_name a; location / { proxy_pass http://b; } }"
        main, _ = nginxconf.as_main(nginxconf.parse(plain))
        self.assertTrue(all(p.method == "GET" for p in probes.plan(main, [])))


class DocrootTests(unittest.TestCase):
    CONF = r"""
server {
    listen 80;
    server_name s.test;
    root /srv/site;
    location / { try_files $uri $uri/ /index.html; }
    location /dl/ { alias /srv/files/; autoindex on; }
    location = /favicon.ico { alias /srv/img/fav.ico; }
    location /api/ { proxy_pass http://127.0.0.1:1; }
}
"""

    def test_roots_point_into_a_filled_docroot_and_files_get_static_probes(self):
        import tempfile
        main, _ = nginxconf.as_main(nginxconf.parse(self.CONF))
        with tempfile.TemporaryDirectory() as tmp:
            notes = []
            served = docroot.rewrite_roots(main, tmp, notes)
            text = nginxconf.serialise(main)
            self.assertIn(os.path.join(tmp, "srv/site"), text)
            self.assertIn(os.path.join(tmp, "srv/files/"), text)
            for f in ("srv/site/index.html", "srv/site/parity.txt", "srv/site/parity-dir/a.txt",
                      "srv/files/parity-sub/index.html", "srv/img/fav.ico"):
                self.assertTrue(os.path.isfile(os.path.join(tmp, f)), f)
            self.assertEqual(os.stat(os.path.join(tmp, "srv/site/parity.txt")).st_mtime, docroot.MTIME)
            self.assertEqual(sorted(p for ps in served.values() for p in ps), ["/", "/dl/"])
            plan = probes.plan(main, [], served)
            static = {(p.path, p.extra, p.method) for p in plan if p.static}
            self.assertIn(("/dl/parity-dir/", (), "GET"), static)
            self.assertIn(("/parity.txt", (("If-None-Match", "@etag"),), "GET"), static)
            self.assertIn(("/parity.txt", (), "HEAD"), static)
            self.assertFalse(any(p.path.startswith("/api/parity") for p in plan))

    def test_an_mp4_location_gets_the_videos_and_the_cut_probes(self):
        import tempfile
        conf = "server { listen 80; server_name v.test; root /srv/v; location /videos/ { mp4; } " \
               "location /plain/ { } }"
        main, _ = nginxconf.as_main(nginxconf.parse(conf))
        with tempfile.TemporaryDirectory() as tmp:
            served = docroot.rewrite_roots(main, tmp, [])
            self.assertTrue(os.path.isfile(os.path.join(tmp, "srv/v/videos/parity.mp4")))
            self.assertFalse(os.path.exists(os.path.join(tmp, "srv/v/plain/parity.mp4")))
            plan = probes.plan(main, [], served)
            paths = {p.path for p in plan if p.static}
            self.assertIn("/videos/parity.mp4?start=1.3&end=3.9", paths)
            self.assertIn("/videos/parity-late.mp4?start=0", paths)
            self.assertFalse(any(p.startswith("/plain/parity") and "mp4" in p for p in paths))

    def test_the_synthetic_mp4_is_the_same_every_time_and_has_its_boxes(self):
        import mp4gen
        a, b = mp4gen.synthetic(), mp4gen.synthetic()
        self.assertEqual(a, b)
        self.assertEqual(a[4:8], b"ftyp")
        for box in (b"moov", b"mdat", b"stss", b"ctts", b"stsc", b"stco"):
            self.assertIn(box, a)
        self.assertIn(b"co64", mp4gen.synthetic(audio=0, co64=True))
        self.assertLess(len(a), 1 << 16, "the client reads bodies up to 64 KiB")
        late = mp4gen.synthetic(moov_first=False)
        self.assertLess(late.index(b"mdat"), late.index(b"moov"))

    def test_binary_bodies_compare_by_digest(self):
        self.assertEqual(compare._body(b"text"), "text")
        self.assertNotEqual(compare._body(b"\xff\x00"), compare._body(b"\xff\x01"))

    def test_static_headers_are_compared_and_encoding_only_when_both_compress(self):
        p = probes.Probe(80, False, "s.test", "/parity.txt", False, static=True)
        ident = lambda s: s  # noqa: E731

        def answer(**h):
            return {"status": 200, "headers": [(k.replace("_", "-"), v) for k, v in h.items()],
                    "body": b"x", "seen": None}
        a = answer(etag='"1-2"', cache_control="max-age=60", content_encoding="gzip")
        b = answer(etag='"1-2"', cache_control="max-age=60")
        diffs, _ = compare.compare(p, a, b, ident, ident, [], [], False)
        self.assertEqual(diffs, [])
        b = answer(cache_control="max-age=1", content_encoding="br")
        fields = {f for f, _, _ in compare.compare(p, a, b, ident, ident, [], [], False)[0]}
        self.assertEqual(fields, {"ETag present", "Cache-Control", "Content-Encoding"})


class CompareTests(unittest.TestCase):
    P = probes.Probe(443, True, "example.com", "/", False)

    def answer(self, status, headers=(), seen=None):
        return {"status": status, "headers": list(headers), "body": b"", "seen": seen}

    def test_ports_are_mapped_back_and_default_ports_dropped(self):
        na = compare.normaliser({443: 50443}, {40001: "10.0.0.5:8080"})
        ga = compare.normaliser({443: 60443}, {40001: "10.0.0.5:8080"})
        a = self.answer(301, [("location", "https://example.com:50443/x")])
        b = self.answer(301, [("location", "https://example.com/x")])
        self.assertEqual(compare.compare(self.P, a, b, na, ga, [], [], False), ([], set()))
        self.assertEqual(na("127.0.0.1:40001"), "10.0.0.5:8080")

    def test_intended_rules_are_named_and_strict_counts_them(self):
        seen = {"upstream": "app", "method": "GET", "path": "/", "query": None, "headers": [["host", "e"]]}
        gseen = dict(seen, headers=[["host", "e"], ["x-forwarded-for", "127.0.0.1"]])
        ident = (lambda s: s)
        a, b = self.answer(200, seen=seen), self.answer(200, seen=gseen)
        self.assertEqual(compare.compare(self.P, a, b, ident, ident, [], [], False),
                         ([], {"forwarded-headers"}))
        diffs, _ = compare.compare(self.P, a, b, ident, ident, [], [], True)
        self.assertEqual(diffs, [("upstream x-forwarded-for", None, "127.0.0.1")])

    def test_a_forced_upgrade_is_intended_only_without_a_client_upgrade(self):
        seen = {"upstream": "app", "method": "GET", "path": "/", "query": None,
                "headers": [["host", "e"], ["upgrade", "websocket"]]}
        gseen = dict(seen, headers=[["host", "e"]])
        ident = (lambda s: s)
        a, b = self.answer(101, seen=seen), self.answer(200, seen=gseen)
        self.assertEqual(compare.compare(self.P, a, b, ident, ident, [], [], False),
                         ([], {"forced-upgrade"}))
        # nginx's upstream saw no Upgrade: a real difference.
        plain = dict(seen, headers=[["host", "e"]])
        diffs, _ = compare.compare(self.P, self.answer(101, seen=plain), b, ident, ident, [], [], False)
        self.assertEqual(diffs, [("status", 101, 200)])

    def test_hsts_missing_from_a_plain_http_redirect_is_intended_and_only_there(self):
        ident = (lambda s: s)
        plain = probes.Probe(80, False, "example.com", "/", False)
        hsts = [("strict-transport-security", "max-age=1"), ("location", "https://example.com/")]
        a = self.answer(301, hsts)
        b = self.answer(301, hsts[1:])
        self.assertEqual(compare.compare(plain, a, b, ident, ident, ["strict-transport-security"], [], False),
                         ([], {"hsts-over-http"}))
        # over TLS the header matters: a real difference
        diffs, _ = compare.compare(self.P, a, b, ident, ident, ["strict-transport-security"], [], False)
        self.assertEqual(diffs, [("header strict-transport-security", "max-age=1", None)])

    def test_added_headers_and_upstream_headers_are_compared(self):
        seen = {"upstream": "app", "method": "GET", "path": "/v1/", "query": None,
                "headers": [["host", "e"], ["x-real-ip", "127.0.0.1"]]}
        gseen = dict(seen, path="/api/", headers=[["host", "e"]])
        ident = (lambda s: s)
        a = self.answer(200, [("x-frame-options", "DENY")], seen)
        b = self.answer(200, [], gseen)
        diffs, _ = compare.compare(self.P, a, b, ident, ident, ["x-frame-options"], ["x-real-ip"], False)
        self.assertEqual(diffs, [("header x-frame-options", "DENY", None),
                                 ("upstream path", "/v1/", "/api/"),
                                 ("upstream x-real-ip", "127.0.0.1", None)])


class EnvsubstTest(unittest.TestCase):
    def test_templates_are_filled_urls_where_proxied(self):
        notes = []
        text = "server_name ${DOM} www.${DOM};\nset $app ${APP};\nproxy_pass $app;\nlocation / { proxy_pass ${API}; }\n$host ${uri}"
        out = rewrite.envsubst(text, notes)
        self.assertIn("server_name dom.env.test www.dom.env.test;", out)
        self.assertIn("set $app http://app.env.test;", out)
        self.assertIn("proxy_pass http://api.env.test;", out)
        self.assertIn("$host ${uri}", out)  # nginx's own variables stay
        self.assertEqual(len(notes), 1)
        self.assertEqual(rewrite.envsubst("proxy_pass http://a;", notes), "proxy_pass http://a;")


if __name__ == "__main__":
    unittest.main()
