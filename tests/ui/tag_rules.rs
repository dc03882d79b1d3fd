// Duplicate keys, reserved keys and the tag limit.
use spectator::{counted, timed};

#[counted("server.calls", status = "200", status = "500")]
fn duplicate() {}

#[timed("server.latency", name = "x", statistic = "count", percentile = "T0042")]
fn reserved_meter_keys() {}

#[timed("server.latency", "nf.app" = "www", "atlas.dstype" = "rate")]
fn reserved_namespaces() {}

#[counted(
    "server.calls",
    t01 = "v", t02 = "v", t03 = "v", t04 = "v", t05 = "v", t06 = "v", t07 = "v",
    t08 = "v", t09 = "v", t10 = "v", t11 = "v", t12 = "v", t13 = "v", t14 = "v",
    t15 = "v", t16 = "v", t17 = "v", t18 = "v", t19 = "v", t20 = "v", t21 = "v"
)]
fn too_many_tags() {}

fn main() {}
