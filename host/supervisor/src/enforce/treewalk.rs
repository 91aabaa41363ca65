//! The call's processes in one snapshot of the process table: everything
//! reachable through parent links from the processes already known to
//! belong to the call. Pure over its inputs, so the same code serves every
//! OS's table reader and is tested over hand-made snapshots.

use std::collections::{HashMap, HashSet, VecDeque};

use super::proctable::ProcStat;

/// Members of the call in `all`: every process in `known` (pid → start
/// time) that is still the same process, and all their descendants,
/// zombies included (they matter for CPU accounting). A known pid whose
/// start time differs has been reused by an unrelated process and is not a
/// member, nor are its children.
pub(crate) fn members(all: &[ProcStat], known: &HashMap<i32, u64>) -> Vec<ProcStat> {
    let mut children: HashMap<i32, Vec<usize>> = HashMap::new();
    let mut by_pid: HashMap<i32, usize> = HashMap::with_capacity(all.len());
    for (i, p) in all.iter().enumerate() {
        children.entry(p.ppid).or_default().push(i);
        by_pid.insert(p.pid, i);
    }
    let mut queue: VecDeque<usize> = known
        .iter()
        .filter_map(|(pid, start)| by_pid.get(pid).filter(|i| all[**i].start == *start))
        .copied()
        .collect();
    let mut found: HashSet<usize> = queue.iter().copied().collect();
    while let Some(i) = queue.pop_front() {
        for &c in children.get(&all[i].pid).map(Vec::as_slice).unwrap_or(&[]) {
            if found.insert(c) {
                queue.push_back(c);
            }
        }
    }
    let mut out: Vec<ProcStat> = found.into_iter().map(|i| all[i]).collect();
    out.sort_by_key(|p| p.pid);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pid: i32, ppid: i32, state: u8, rss: u64) -> ProcStat {
        ProcStat {
            pid,
            ppid,
            state,
            start: 1000 + pid as u64,
            cpu_us: 0,
            rss_bytes: rss,
        }
    }

    fn known(procs: &[&ProcStat]) -> HashMap<i32, u64> {
        procs.iter().map(|p| (p.pid, p.start)).collect()
    }

    fn pids(m: &[ProcStat]) -> Vec<i32> {
        m.iter().map(|p| p.pid).collect()
    }

    /// init(1) ─ host(10) ─ worker(20) ─ sh(21) ─ sleep(22)
    ///                                  └ zombie(23)
    ///         └ unrelated(30) ─ child(31)
    fn table() -> Vec<ProcStat> {
        vec![
            p(1, 0, b'S', 10),
            p(10, 1, b'S', 100),
            p(20, 10, b'S', 200),
            p(21, 20, b'S', 300),
            p(22, 21, b'R', 400),
            p(23, 20, b'Z', 0),
            p(30, 1, b'S', 900),
            p(31, 30, b'S', 900),
        ]
    }

    #[test]
    fn walks_every_descendant_of_the_worker_and_nothing_else() {
        let all = table();
        let m = members(&all, &known(&[&all[2]]));
        assert_eq!(pids(&m), vec![20, 21, 22, 23]);
        let rss: u64 = m.iter().filter(|p| !p.is_dead()).map(|p| p.rss_bytes).sum();
        assert_eq!(rss, 900);
    }

    #[test]
    fn an_orphan_seen_before_stays_a_member_with_its_children() {
        let mut all = table();
        let orphan = all[3]; // sh(21), about to be reparented to init
        all[3].ppid = 1;
        all.push(p(24, 21, b'S', 50));
        let m = members(&all, &known(&[&all[2], &orphan]));
        assert_eq!(pids(&m), vec![20, 21, 22, 23, 24]);
    }

    #[test]
    fn a_reused_pid_is_not_a_member() {
        let old_sh = p(21, 20, b'S', 300);
        // The call is over; pid 21 now names an unrelated process (another
        // start time) with a child of its own.
        let reused = ProcStat {
            start: old_sh.start + 1,
            ppid: 30,
            ..old_sh
        };
        let all = vec![
            p(1, 0, b'S', 10),
            p(30, 1, b'S', 9),
            reused,
            p(22, 21, b'S', 4),
        ];
        let m = members(&all, &known(&[&old_sh]));
        assert!(m.is_empty(), "{m:?}");
    }

    #[test]
    fn an_empty_table_has_no_members() {
        let all = table();
        assert!(members(&[], &known(&[&all[2]])).is_empty());
    }
}
