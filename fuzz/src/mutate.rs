//! Input generation: a xorshift PRNG and byte-level mutations.

/// xorshift64*: fast, deterministic for a seed, good enough to drive mutations.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `0..bound` (`bound` > 0).
    pub fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound as u64) as usize
    }

    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

/// Values that tend to sit on boundaries of length and type fields.
const INTERESTING_U8: [u8; 9] = [0, 1, 3, 4, 0x7f, 0x80, 0xfe, 0xff, 16];
const INTERESTING_U16: [u16; 8] = [0, 4, 8, 16, 20, 0x7fff, 0x8000, 0xffff];
const INTERESTING_U32: [u32; 6] = [0, 16, 20, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff];

/// Applies one to four random mutations to `data`; `pool` supplies splice donors.
pub fn mutate(rng: &mut Rng, data: &mut Vec<u8>, pool: &[Vec<u8>], dictionary: &[&[u8]]) {
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        match rng.below(10) {
            0 => flip_bit(rng, data),
            1 => set_byte(rng, data),
            2 => set_interesting(rng, data),
            3 => truncate(rng, data),
            4 => splice(rng, data, pool),
            5 => insert_interesting(rng, data),
            6 => duplicate_range(rng, data),
            7 => remove_range(rng, data),
            8 => insert_token(rng, data, dictionary),
            _ => add_to_byte(rng, data),
        }
    }
    if data.len() > 1 << 16 {
        data.truncate(1 << 16);
    }
}

fn flip_bit(rng: &mut Rng, data: &mut [u8]) {
    if !data.is_empty() {
        let i = rng.below(data.len());
        data[i] ^= 1 << rng.below(8);
    }
}

fn set_byte(rng: &mut Rng, data: &mut [u8]) {
    if !data.is_empty() {
        let i = rng.below(data.len());
        data[i] = rng.next_u64() as u8;
    }
}

fn add_to_byte(rng: &mut Rng, data: &mut [u8]) {
    if !data.is_empty() {
        let i = rng.below(data.len());
        let delta = rng.below(35) as u8;
        data[i] = if rng.chance(2) {
            data[i].wrapping_add(delta)
        } else {
            data[i].wrapping_sub(delta)
        };
    }
}

/// Overwrites 1, 2 or 4 bytes with a boundary value, in either byte order
/// (netlink is host order, some attributes are network order).
fn set_interesting(rng: &mut Rng, data: &mut [u8]) {
    let bytes = interesting_bytes(rng);
    if data.len() >= bytes.len() {
        let i = rng.below(data.len() - bytes.len() + 1);
        data[i..i + bytes.len()].copy_from_slice(&bytes);
    }
}

fn insert_interesting(rng: &mut Rng, data: &mut Vec<u8>) {
    let bytes = interesting_bytes(rng);
    let at = rng.below(data.len() + 1);
    data.splice(at..at, bytes);
}

fn interesting_bytes(rng: &mut Rng) -> Vec<u8> {
    let big_endian = rng.chance(2);
    match rng.below(3) {
        0 => vec![INTERESTING_U8[rng.below(INTERESTING_U8.len())]],
        1 => {
            let v = INTERESTING_U16[rng.below(INTERESTING_U16.len())];
            if big_endian {
                v.to_be_bytes().to_vec()
            } else {
                v.to_le_bytes().to_vec()
            }
        }
        _ => {
            let v = INTERESTING_U32[rng.below(INTERESTING_U32.len())];
            if big_endian {
                v.to_be_bytes().to_vec()
            } else {
                v.to_le_bytes().to_vec()
            }
        }
    }
}

fn truncate(rng: &mut Rng, data: &mut Vec<u8>) {
    if !data.is_empty() {
        let len = rng.below(data.len());
        data.truncate(len);
    }
}

/// Replaces the tail of `data` with the tail of another corpus entry.
fn splice(rng: &mut Rng, data: &mut Vec<u8>, pool: &[Vec<u8>]) {
    if pool.is_empty() {
        return;
    }
    let donor = &pool[rng.below(pool.len())];
    let cut = rng.below(data.len() + 1);
    let from = rng.below(donor.len() + 1);
    data.truncate(cut);
    data.extend_from_slice(&donor[from..]);
}

fn duplicate_range(rng: &mut Rng, data: &mut Vec<u8>) {
    if data.is_empty() {
        return;
    }
    let start = rng.below(data.len());
    let len = 1 + rng.below((data.len() - start).min(64));
    let chunk = data[start..start + len].to_vec();
    let at = rng.below(data.len() + 1);
    data.splice(at..at, chunk);
}

fn remove_range(rng: &mut Rng, data: &mut Vec<u8>) {
    if data.is_empty() {
        return;
    }
    let start = rng.below(data.len());
    let len = 1 + rng.below((data.len() - start).min(64));
    data.drain(start..start + len);
}

fn insert_token(rng: &mut Rng, data: &mut Vec<u8>, dictionary: &[&[u8]]) {
    if dictionary.is_empty() {
        return;
    }
    let token = dictionary[rng.below(dictionary.len())];
    let at = rng.below(data.len() + 1);
    data.splice(at..at, token.iter().copied());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_deterministic_and_varied() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let first: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        assert_eq!(first, (0..8).map(|_| b.next_u64()).collect::<Vec<_>>());
        assert!(first.windows(2).all(|w| w[0] != w[1]));
        assert!((0..1000).all(|_| a.below(5) < 5));
    }

    #[test]
    fn mutations_change_inputs_and_stay_bounded() {
        let mut rng = Rng::new(1);
        let seed = b"{\"a\":[1,2,3]}".to_vec();
        let pool = vec![seed.clone(), b"[]".to_vec()];
        let mut changed = 0;
        for _ in 0..1000 {
            let mut input = seed.clone();
            mutate(&mut rng, &mut input, &pool, &[b"null"]);
            assert!(input.len() <= 1 << 16);
            changed += usize::from(input != seed);
        }
        assert!(changed > 900, "only {changed} of 1000 inputs changed");
    }
}
