// metrics! declarations.
spectator::metrics! {
    static A: Histogram = "server.a";
    static B: Counter = "server b";
    static C: Timer = status = "200";
    static D: Gauge = "server.d", percentiles;
    static E: Counter = "server.e", "nf.app" = "x";
}

spectator::metrics! {
    static mut F: Counter = "server.f";
}

spectator::metrics! {
    static G: Counter = "server.g"
}

fn main() {}
