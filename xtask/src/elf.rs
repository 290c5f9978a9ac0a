//! Just enough ELF64 reading to tell whether a binary is static and stripped.

use crate::Result;

const PT_INTERP: u32 = 3;
const ET_DYN: u16 = 3;
const SHT_SYMTAB: u32 = 2;

pub struct ElfFacts {
    /// A program interpreter (dynamic loader) is requested.
    pub has_interpreter: bool,
    /// A `.symtab` section remains (not stripped).
    pub has_symtab: bool,
    /// The file is position-independent (`ET_DYN`: a static-pie or a shared
    /// object) rather than loaded at a fixed address (`ET_EXEC`).
    pub is_pie: bool,
}

fn u16_at(data: &[u8], offset: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        data.get(offset..offset + 2)?.try_into().ok()?,
    ))
}

fn u32_at(data: &[u8], offset: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        data.get(offset..offset + 4)?.try_into().ok()?,
    ))
}

fn u64_at(data: &[u8], offset: usize) -> Option<usize> {
    usize::try_from(u64::from_le_bytes(
        data.get(offset..offset + 8)?.try_into().ok()?,
    ))
    .ok()
}

/// Reads the program and section headers of a little-endian ELF64 file.
pub fn inspect(data: &[u8]) -> Result<ElfFacts> {
    if data.get(..4) != Some(b"\x7fELF") || data.get(4) != Some(&2) || data.get(5) != Some(&1) {
        return Err("not a little-endian ELF64 file".into());
    }
    let truncated = || "truncated ELF header".to_string();
    let e_type = u16_at(data, 0x10).ok_or_else(truncated)?;
    let phoff = u64_at(data, 0x20).ok_or_else(truncated)?;
    let shoff = u64_at(data, 0x28).ok_or_else(truncated)?;
    let phentsize = usize::from(u16_at(data, 0x36).ok_or_else(truncated)?);
    let phnum = usize::from(u16_at(data, 0x38).ok_or_else(truncated)?);
    let shentsize = usize::from(u16_at(data, 0x3A).ok_or_else(truncated)?);
    let shnum = usize::from(u16_at(data, 0x3C).ok_or_else(truncated)?);
    let mut facts = ElfFacts {
        has_interpreter: false,
        has_symtab: false,
        is_pie: e_type == ET_DYN,
    };
    for index in 0..phnum {
        let p_type = u32_at(data, phoff + index * phentsize).ok_or("truncated program header")?;
        facts.has_interpreter |= p_type == PT_INTERP;
    }
    for index in 0..shnum {
        let sh_type =
            u32_at(data, shoff + index * shentsize + 4).ok_or("truncated section header")?;
        facts.has_symtab |= sh_type == SHT_SYMTAB;
    }
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_non_elf() {
        assert!(inspect(b"#!/bin/sh\n").is_err());
        assert!(inspect(b"\x7fELF\x02\x01").is_err());
    }

    #[test]
    fn reads_a_real_binary() {
        // The running xtask is a dynamically linked (glibc) or static build of this
        // very file: either way it must parse.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        inspect(&me).unwrap();
    }
}
