//! What the embedding examples share: the process's CPU time, for their `--idle-cpu` mode.

use std::time::{Duration, Instant};

/// User plus system CPU time of this process, from `/proc/self/stat` (clock ticks of 10 ms).
pub fn process_cpu() -> Result<Duration, String> {
    let stat = std::fs::read_to_string("/proc/self/stat").map_err(|e| e.to_string())?;
    // Fields after the command name (which may hold spaces), from field 3 (state) on.
    let after_comm = &stat[stat.rfind(')').ok_or("bad /proc/self/stat")? + 2..];
    let fields: Vec<&str> = after_comm.split(' ').collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    // utime and stime are fields 14 and 15 of proc(5).
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => Ok(Duration::from_millis((user + system) * 10)),
        _ => Err("bad /proc/self/stat".into()),
    }
}

/// Prints the `--idle-cpu` line: the CPU used since `cpu_before` (a [`process_cpu`] reading)
/// over the time since `started`, then `more` (e.g. `, 3 wake-ups`).
pub fn report_idle(cpu_before: Duration, started: Instant, more: &str) -> Result<(), String> {
    let used = process_cpu()? - cpu_before;
    println!(
        "idle-cpu: {} ms of CPU in {:.2} s{more}",
        used.as_millis(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
