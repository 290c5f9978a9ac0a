//! Driver behaviour beyond the walkthrough, in the QEMU guest.

mod vm_support;
