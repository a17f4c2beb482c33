# Varnish as the cache under test: the stock default VCL (builtin logic
# only) with the suite's origin as backend.  run.sh replaces @ORIGIN_PORT@
# and starts varnishd with the parameters of the suite's docker/serve.sh:
# default_ttl=0, default_grace=0, default_keep=3600.
vcl 4.1;

backend default {
    .host = "127.0.0.1";
    .port = "@ORIGIN_PORT@";
}
