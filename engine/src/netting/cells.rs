//! The dense member × instrument quantity grid's memory.
//!
//! A 1,000 × 2,000 grid is 16 MB, and nearly every trade touches two random cells of it: with
//! 4 KiB pages that is a TLB miss per cell on top of the cache miss (4,096 pages, more than
//! the second-level TLB holds), and the prefetches that hide the cache miss stall on the page
//! walk. Backed by 2 MiB pages the grid needs 8 TLB entries. Linux gives huge pages to
//! anonymous memory that asks for them (`MADV_HUGEPAGE`; the default `madvise` mode of
//! transparent huge pages gives them to nothing else); where it cannot, this is a plain
//! zeroed allocation and only slower.

use std::ops::{Deref, DerefMut};

/// A fixed-length, zero-initialised array of `T`, in huge pages where the system allows.
pub(super) struct Cells<T: Zeroed> {
    storage: Storage<T>,
}

/// Types whose all-zero bytes are a valid value (the default one).
///
/// # Safety
/// Every bit pattern of all zeros must be a valid `T`.
pub(super) unsafe trait Zeroed: Copy {}

enum Storage<T> {
    Heap(Vec<T>),
    #[cfg(target_os = "linux")]
    Mapped {
        /// Start of the whole mapping (what `munmap` needs) and its length.
        map: *mut libc::c_void,
        map_bytes: usize,
        /// The array, at the first huge-page boundary of the mapping.
        cells: *mut T,
        len: usize,
    },
}

// SAFETY: `Mapped` owns its memory exclusively, as a `Vec` does, so the same rules apply.
unsafe impl<T: Zeroed + Send> Send for Cells<T> {}
// SAFETY: shared access gives only `&[T]`.
unsafe impl<T: Zeroed + Sync> Sync for Cells<T> {}

/// Below this a grid fits the TLB anyway; not worth a mapping of its own.
const MAPPED_MIN_BYTES: usize = 4 << 20;
const HUGE_PAGE_BYTES: usize = 2 << 20;

impl<T: Zeroed> Cells<T> {
    /// `len` zeroed cells.
    pub(super) fn zeroed(len: usize) -> Cells<T> {
        let bytes = len.saturating_mul(std::mem::size_of::<T>());
        #[cfg(target_os = "linux")]
        if bytes >= MAPPED_MIN_BYTES {
            if let Some(storage) = Self::mapped(len, bytes) {
                return Cells { storage };
            }
        }
        let _ = bytes;
        Cells {
            // SAFETY: `Zeroed` promises that zero bytes are a valid `T`.
            storage: Storage::Heap(vec![unsafe { std::mem::zeroed() }; len]),
        }
    }

    #[cfg(target_os = "linux")]
    fn mapped(len: usize, bytes: usize) -> Option<Storage<T>> {
        // One huge page more than needed, so that the array can start on a huge-page boundary.
        let map_bytes = bytes.checked_add(2 * HUGE_PAGE_BYTES)? & !(HUGE_PAGE_BYTES - 1);
        // SAFETY: a new private anonymous mapping; no existing memory is touched.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return None;
        }
        let offset = (HUGE_PAGE_BYTES - (map as usize) % HUGE_PAGE_BYTES) % HUGE_PAGE_BYTES;
        // SAFETY: `offset` < one huge page and the mapping has two spare, so the array lies
        // inside it.
        let start = unsafe { map.cast::<u8>().add(offset) };
        let advised = (bytes + HUGE_PAGE_BYTES - 1) & !(HUGE_PAGE_BYTES - 1);
        // A refusal (huge pages disabled) leaves ordinary pages: slower, still correct. The
        // pages are untouched yet, so the first touch of each gets a huge page.
        // SAFETY: the range lies inside the mapping made above.
        unsafe { libc::madvise(start.cast(), advised, libc::MADV_HUGEPAGE) };
        // Anonymous memory reads as zeros, a valid `T` by `Zeroed`; the mapping is page-aligned
        // and a huge-page offset keeps any smaller alignment.
        debug_assert_eq!(start as usize % std::mem::align_of::<T>(), 0);
        Some(Storage::Mapped {
            map,
            map_bytes,
            cells: start.cast(),
            len,
        })
    }
}

impl<T: Zeroed> Deref for Cells<T> {
    type Target = [T];

    #[inline]
    fn deref(&self) -> &[T] {
        match &self.storage {
            Storage::Heap(v) => v,
            // SAFETY: `cells` points at `len` initialised (zeroed or since written) `T`s that
            // this value owns.
            #[cfg(target_os = "linux")]
            Storage::Mapped { cells, len, .. } => unsafe {
                std::slice::from_raw_parts(*cells, *len)
            },
        }
    }
}

impl<T: Zeroed> DerefMut for Cells<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [T] {
        match &mut self.storage {
            Storage::Heap(v) => v,
            // SAFETY: as in `deref`, and `&mut self` makes the access exclusive.
            #[cfg(target_os = "linux")]
            Storage::Mapped { cells, len, .. } => unsafe {
                std::slice::from_raw_parts_mut(*cells, *len)
            },
        }
    }
}

impl<T: Zeroed> Drop for Cells<T> {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        if let Storage::Mapped { map, map_bytes, .. } = self.storage {
            // SAFETY: the mapping made in `mapped`, unmapped once; nothing borrows it now.
            unsafe { libc::munmap(map, map_bytes) };
        }
    }
}

impl<T: Zeroed> Clone for Cells<T> {
    fn clone(&self) -> Cells<T> {
        let mut copy = Cells::zeroed(self.len());
        copy.copy_from_slice(self);
        copy
    }
}

impl<T: Zeroed + std::fmt::Debug> std::fmt::Debug for Cells<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cells").field("len", &self.len()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // SAFETY: two integers; zero bytes are (0, 0).
    unsafe impl Zeroed for (u32, u32) {}

    #[test]
    fn small_and_mapped_arrays_start_zeroed_and_keep_what_is_written() {
        for len in [0, 1, 1000, (MAPPED_MIN_BYTES / 8) + 3] {
            let mut cells: Cells<(u32, u32)> = Cells::zeroed(len);
            assert_eq!(cells.len(), len);
            assert!(cells.iter().all(|c| *c == (0, 0)));
            for (i, c) in cells.iter_mut().enumerate() {
                *c = (i as u32, 7);
            }
            let copy = cells.clone();
            drop(cells);
            assert_eq!(copy.len(), len);
            assert!(copy.iter().enumerate().all(|(i, c)| *c == (i as u32, 7)));
        }
    }
}
