//! The `needs` graph: topological order, strongly connected components, reachability and
//! the shortest cycle through a node.

use std::collections::{BTreeSet, HashMap};

use crate::definition::NodeDef;

/// Nodes ordered so each comes after its needs; among those available, the smallest id first.
/// Nodes on or behind a cycle are left out.
pub(super) fn topological_order(deps: &[Vec<usize>], nodes: &[NodeDef]) -> Vec<usize> {
    let mut waiting: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut dependents = vec![Vec::new(); deps.len()];
    for (i, needs) in deps.iter().enumerate() {
        for &k in needs {
            dependents[k].push(i);
        }
    }
    let mut ready: BTreeSet<(&str, usize)> = (0..deps.len())
        .filter(|&i| waiting[i] == 0)
        .map(|i| (nodes[i].id.as_str(), i))
        .collect();
    let mut order = Vec::with_capacity(deps.len());
    while let Some((_, i)) = ready.pop_first() {
        order.push(i);
        for &d in &dependents[i] {
            waiting[d] -= 1;
            if waiting[d] == 0 {
                ready.insert((nodes[d].id.as_str(), d));
            }
        }
    }
    order
}

/// The strongly connected components of the `needs` graph.
pub(super) struct Condensation {
    /// The component of each node.
    pub(super) of: Vec<usize>,
    /// The nodes of each component, components ordered so that every component comes after
    /// the components its nodes need.
    pub(super) members: Vec<Vec<usize>>,
}

/// Strongly connected components (Kosaraju, iterative): O(nodes + needs).
pub(super) fn condensation(deps: &[Vec<usize>]) -> Condensation {
    let n = deps.len();
    let mut finished = Vec::with_capacity(n);
    let mut visited = vec![false; n];
    for root in 0..n {
        if visited[root] {
            continue;
        }
        visited[root] = true;
        let mut stack = vec![(root, 0)];
        while let Some((node, next)) = stack.pop() {
            if let Some(&child) = deps[node].get(next) {
                stack.push((node, next + 1));
                if !visited[child] {
                    visited[child] = true;
                    stack.push((child, 0));
                }
            } else {
                finished.push(node);
            }
        }
    }
    let mut reverse = vec![Vec::new(); n];
    for (i, needs) in deps.iter().enumerate() {
        for &k in needs {
            reverse[k].push(i);
        }
    }
    let mut of = vec![usize::MAX; n];
    let mut members = Vec::new();
    for &root in finished.iter().rev() {
        if of[root] != usize::MAX {
            continue;
        }
        let id = members.len();
        of[root] = id;
        let mut component = vec![root];
        let mut stack = vec![root];
        while let Some(node) = stack.pop() {
            for &next in &reverse[node] {
                if of[next] == usize::MAX {
                    of[next] = id;
                    component.push(next);
                    stack.push(next);
                }
            }
        }
        members.push(component);
    }
    // Kosaraju finds components dependents first; needs first is the reverse.
    members.reverse();
    let count = members.len();
    for c in &mut of {
        *c = count - 1 - *c;
    }
    Condensation { of, members }
}

/// For each `(from, to)` with `from != to`: whether `to` is among the transitive needs of
/// `from`. One pass over the condensed graph per 64 distinct `to`s, carrying a bit per `to`.
pub(super) fn reaches(
    deps: &[Vec<usize>],
    components: &Condensation,
    pairs: &[(usize, usize)],
) -> Vec<bool> {
    let mut answers = vec![false; pairs.len()];
    let mut targets: Vec<usize> = pairs.iter().map(|&(_, to)| to).collect();
    targets.sort_unstable();
    targets.dedup();
    if targets.is_empty() {
        return answers;
    }
    let count = components.members.len();
    // Pairs by target, so each batch answers its own.
    let mut by_target: Vec<usize> = (0..pairs.len()).collect();
    by_target.sort_unstable_by_key(|&p| pairs[p].1);
    let mut next_pair = 0;
    // Bits of the batch's targets in each component, and those among its transitive needs.
    let mut own = vec![0u64; count];
    let mut below = vec![0u64; count];
    for batch in targets.chunks(64) {
        own.fill(0);
        below.fill(0);
        for (bit, &t) in batch.iter().enumerate() {
            own[components.of[t]] |= 1 << bit;
        }
        for (c, nodes) in components.members.iter().enumerate() {
            let mut bits = 0;
            for &u in nodes {
                for &v in &deps[u] {
                    let cv = components.of[v];
                    if cv != c {
                        bits |= own[cv] | below[cv];
                    }
                }
            }
            below[c] = bits;
        }
        let last = batch[batch.len() - 1];
        while let Some(&p) = by_target.get(next_pair) {
            let (from, to) = pairs[p];
            if to > last {
                break;
            }
            next_pair += 1;
            let bit = batch.partition_point(|&t| t < to);
            let (cf, ct) = (components.of[from], components.of[to]);
            // Nodes of one component (of two or more) reach each other.
            answers[p] = (cf == ct && from != to) || below[cf] & (1 << bit) != 0;
        }
    }
    answers
}

/// A shortest cycle through `start` along `needs` edges within its component (`component_of`),
/// as `[start, …, start]`.
pub(super) fn shortest_cycle(
    start: usize,
    deps: &[Vec<usize>],
    component_of: &[usize],
) -> Vec<usize> {
    let mine = component_of[start];
    let mut parent: HashMap<usize, usize> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for &next in &deps[node] {
            if next == start {
                let mut cycle = vec![node];
                let mut at = node;
                while at != start {
                    // Every node reached from `start` has a parent.
                    at = parent.get(&at).copied().unwrap_or(start);
                    cycle.push(at);
                }
                cycle.reverse();
                cycle.push(start);
                return cycle;
            }
            if component_of[next] == mine && !parent.contains_key(&next) && next != start {
                parent.insert(next, node);
                queue.push_back(next);
            }
        }
    }
    vec![start, start]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn components_and_cycles() {
        // 0 needs 1, 1 needs 2, 2 needs 0; 3 needs 0; 4 needs itself.
        let deps = vec![vec![1], vec![2], vec![0], vec![0], vec![4]];
        let c = condensation(&deps);
        let mut sorted: Vec<Vec<usize>> = c
            .members
            .iter()
            .map(|m| {
                let mut m = m.clone();
                m.sort_unstable();
                m
            })
            .collect();
        // {0, 1, 2} comes before {3}, which needs it.
        let pos = |n: usize| c.of[n];
        assert!(pos(0) < pos(3));
        sorted.sort();
        assert_eq!(sorted, vec![vec![0, 1, 2], vec![3], vec![4]]);
        assert_eq!(shortest_cycle(0, &deps, &c.of), [0, 1, 2, 0]);
        assert_eq!(shortest_cycle(4, &deps, &c.of), [4, 4]);
    }

    /// Transitive needs by a plain search from `from`.
    pub(super) fn reaches_slowly(deps: &[Vec<usize>], from: usize, to: usize) -> bool {
        let mut seen = vec![false; deps.len()];
        let mut stack = deps[from].clone();
        while let Some(k) = stack.pop() {
            if k == to {
                return true;
            }
            if !std::mem::replace(&mut seen[k], true) {
                stack.extend(&deps[k]);
            }
        }
        false
    }

    #[test]
    pub(super) fn batched_reachability_agrees_with_a_plain_search() {
        // A pseudo-random graph (fixed seed) with back edges, so it has cycles too, and more
        // than 64 distinct targets, so several batches.
        let n = 150;
        let mut seed: u64 = 12345;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        };
        let mut deps = vec![Vec::new(); n];
        for (i, needs) in deps.iter_mut().enumerate() {
            for _ in 0..next() % 3 {
                let k = if next() % 10 == 0 {
                    next() % n
                } else {
                    next() % (i + 1)
                };
                if k != i && !needs.contains(&k) {
                    needs.push(k);
                }
            }
        }
        // And one cycle for sure: 30 → 31 → 32 → 30.
        for (from, to) in [(30, 31), (31, 32), (32, 30)] {
            if !deps[from].contains(&to) {
                deps[from].push(to);
            }
        }
        let pairs: Vec<(usize, usize)> = (0..2_000)
            .map(|_| (next() % n, next() % n))
            .filter(|(a, b)| a != b)
            .collect();
        let c = condensation(&deps);
        let fast = reaches(&deps, &c, &pairs);
        for (&(from, to), got) in pairs.iter().zip(fast) {
            assert_eq!(got, reaches_slowly(&deps, from, to), "{from} → {to}");
        }
        assert!(
            c.members.iter().any(|m| m.len() > 1),
            "the graph has a cycle"
        );
    }
}
