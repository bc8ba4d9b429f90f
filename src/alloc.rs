//! The global allocator: the system allocator, except that an allocation of at least
//! [`RESERVED_ALLOCATION_BYTES`] only reserves address space (an anonymous `mmap` with
//! `MAP_NORESERVE`), committing memory page by page as it is touched.
//!
//! Why: a decoder that sizes a buffer from a count read off the wire before reading the
//! elements (the kafka-protocol crate does, `Vec::with_capacity(count)`) would otherwise let
//! one 30-byte hostile request abort the whole server: the system allocator refuses a
//! reservation larger than RAM + swap, and a failed allocation aborts the process. Reserved
//! pages cost nothing until written, and such a decode fails at the first missing element,
//! long before. (With `vm.overcommit_memory = 2` the kernel refuses the reservation anyway.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr;

/// Allocations at least this large are reserved rather than committed up front.
pub const RESERVED_ALLOCATION_BYTES: usize = 1 << 30;
/// `mmap` returns page-aligned memory; larger alignments go to the system allocator.
const PAGE_BYTES: usize = 4096;

pub struct WeirAllocator;

fn reserved(layout: Layout) -> bool {
    layout.size() >= RESERVED_ALLOCATION_BYTES && layout.align() <= PAGE_BYTES
}

/// Reserves `size` bytes of zeroed, readable and writable memory; null on failure.
unsafe fn reserve(size: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping touches no existing memory.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        ptr::null_mut()
    } else {
        p.cast()
    }
}

// SAFETY: every block is freed by the path that allocated it: `reserved(layout)` decides both,
// and callers pass the same layout to `dealloc` (and `realloc`) as to `alloc`.
unsafe impl GlobalAlloc for WeirAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if reserved(layout) {
            unsafe { reserve(layout.size()) }
        } else {
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if reserved(layout) {
            unsafe { reserve(layout.size()) } // anonymous mappings start zeroed
        } else {
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if reserved(layout) {
            unsafe { libc::munmap(ptr.cast(), layout.size()) };
        } else {
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return ptr::null_mut();
        };
        match (reserved(layout), reserved(new_layout)) {
            (false, false) => unsafe { System.realloc(ptr, layout, new_size) },
            _ => {
                let new = unsafe { self.alloc(new_layout) };
                if !new.is_null() {
                    let kept = layout.size().min(new_size);
                    unsafe {
                        ptr::copy_nonoverlapping(ptr, new, kept);
                        self.dealloc(ptr, layout);
                    }
                }
                new
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_reservation_larger_than_memory_succeeds_and_is_released() {
        // 256 GiB: more than this machine's RAM + swap, as a hostile wire count asks for.
        let mut v: Vec<u64> = Vec::with_capacity(32 << 30);
        v.push(7);
        assert_eq!(v[0], 7);
        drop(v);
        // Growing across the threshold copies into a reservation (and back down, out of it).
        let mut grown = vec![1u8; 1 << 20];
        grown.reserve_exact(super::RESERVED_ALLOCATION_BYTES);
        assert!(grown.capacity() > super::RESERVED_ALLOCATION_BYTES);
        grown.push(2);
        grown.shrink_to_fit();
        assert_eq!(
            (grown[0], grown[1 << 20], grown.len()),
            (1, 2, (1 << 20) + 1)
        );
    }
}
