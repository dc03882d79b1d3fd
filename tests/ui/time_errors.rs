// time! blocks.
fn main() {
    let _a = spectator::time!({ 1 });
    let _b = spectator::time!("db.query", table = "users");
    let _c = spectator::time!("db query", { 1 });
    let _d = spectator::time!("db.query", { 1 }, table = "users");
    let _e = spectator::time!("db.query", t = "users", { 1 });
    let _f = spectator::time!("db.query", histogram, { 1 });
}
