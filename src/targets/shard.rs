//! Which instances this replica watches: FNV-1a 64 over the instance ID,
//! then jump consistent hash into the shard count, as kube-state-metrics
//! shards. A contract: every version and every replica must agree, so the
//! reference vectors of `design.md` are tested below.

/// This replica's share of the instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 0-based; always below `count`.
    pub index: u32,
    /// At least 1.
    pub count: u32,
}

impl Default for Shard {
    fn default() -> Self {
        Shard { index: 0, count: 1 }
    }
}

impl Shard {
    /// Whether `instance_id` belongs to this shard.
    pub fn owns(&self, instance_id: &str) -> bool {
        self.count <= 1 || jump(fnv1a64(instance_id.as_bytes()), self.count) == self.index
    }
}

/// FNV-1a, 64 bits.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |hash, b| (hash ^ u64::from(*b)).wrapping_mul(PRIME))
}

/// Jump consistent hash (Lamping & Veach, 2014): the bucket in `0..buckets`
/// of `key`; going from n to n+1 buckets moves only 1/(n+1) of the keys.
pub fn jump(mut key: u64, buckets: u32) -> u32 {
    let buckets = i64::from(buckets.max(1));
    let (mut b, mut j) = (-1i64, 0i64);
    while j < buckets {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    // `b` is in 0..buckets, and buckets fits in u32.
    b as u32
}

/// The StatefulSet ordinal at the end of a host name: `exporter-3` → 3.
pub fn ordinal_from_hostname(hostname: &str) -> Option<u32> {
    let (_, digits) = hostname.trim().rsplit_once('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_vectors_of_the_design() {
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        for buckets in 7..=17 {
            assert_eq!(jump(1, buckets), 6, "jump(1, {buckets})");
        }
        assert_eq!(jump(1, 18), 17);
        let got: Vec<u32> = (2..=6).map(|n| jump(0xdead_beef, n)).collect();
        assert_eq!(got, [1, 2, 3, 3, 5]);
        assert_eq!(jump(42, 1), 0);
    }

    fn ids() -> Vec<String> {
        (0..10_000).map(|i| format!("r-bp1{i:010x}")).collect()
    }

    #[test]
    fn every_instance_has_exactly_one_owner_for_1_to_8_shards() {
        let ids = ids();
        for count in 1..=8u32 {
            let mut per_shard = vec![0usize; count as usize];
            for id in &ids {
                let owners: Vec<u32> = (0..count)
                    .filter(|&index| Shard { index, count }.owns(id))
                    .collect();
                assert_eq!(owners.len(), 1, "{id} with {count} shards: {owners:?}");
                per_shard[owners[0] as usize] += 1;
            }
            // Balanced within 10 % of the even share.
            let even = ids.len() / count as usize;
            for n in per_shard {
                assert!(
                    n.abs_diff(even) * 10 <= even,
                    "{count} shards: {n} vs {even}"
                );
            }
        }
    }

    #[test]
    fn adding_a_shard_moves_about_one_in_n_plus_one() {
        let ids = ids();
        for n in 1..=7u32 {
            let moved = ids
                .iter()
                .filter(|id| {
                    let h = fnv1a64(id.as_bytes());
                    jump(h, n) != jump(h, n + 1)
                })
                .count();
            let expected = ids.len() as f64 / f64::from(n + 1);
            let off = (moved as f64 - expected).abs() / expected;
            assert!(
                off < 0.1,
                "{n}→{}: moved {moved}, expected ~{expected:.0}",
                n + 1
            );
            // And every moved ID went to the new shard, never between old ones.
            for id in &ids {
                let h = fnv1a64(id.as_bytes());
                let (before, after) = (jump(h, n), jump(h, n + 1));
                assert!(before == after || after == n, "{id}: {before} → {after}");
            }
        }
    }

    #[test]
    fn ordinals_from_statefulset_host_names() {
        assert_eq!(ordinal_from_hostname("aliyun-backup-exporter-3"), Some(3));
        assert_eq!(ordinal_from_hostname("x-0\n"), Some(0));
        assert_eq!(ordinal_from_hostname("exporter"), None);
        assert_eq!(ordinal_from_hostname("exporter-"), None);
        assert_eq!(ordinal_from_hostname("exporter-7b9f"), None);
    }
}
