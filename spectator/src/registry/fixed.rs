//! Which bytes cannot change while this code runs: the read-only parts of the executable or
//! library this crate is linked into (its code, its string literals and its constants).
//!
//! A lookup memo (see `local`) whose strings all lie there can recognise a call site by the
//! strings' addresses and lengths alone: the same address and length there is the same text,
//! for as long as the object is loaded, and this code is part of that object. Strings anywhere
//! else (the heap, the stack, writable statics, another library that might be unloaded and
//! its addresses reused) are compared by contents, as before.
//!
//! On Linux the spans come from the object's program headers (`dl_iterate_phdr`): its
//! `PT_LOAD` segments mapped without write permission, and the pages its `PT_GNU_RELRO`
//! header has the loader make read-only after relocation (where constants holding pointers,
//! such as a literal `&[("status", "200")]`, live in a position-independent executable). Pages
//! that a writable segment maps are never counted, even where a read-only segment shares them.
//! Elsewhere nothing is counted as fixed, and every memo hit compares contents.

/// Whether the `len` bytes at `ptr` are fixed for the life of the process (as far as this
/// code can tell; `false` when unsure). No bytes are trivially fixed.
pub(crate) fn is_fixed(ptr: *const u8, len: usize) -> bool {
    if len == 0 {
        return true;
    }
    let start = ptr as usize;
    match start.checked_add(len) {
        Some(end) => imp::contains(start, end),
        None => false,
    }
}

/// [`is_fixed`] for a string.
pub(crate) fn is_fixed_str(s: &str) -> bool {
    is_fixed(s.as_ptr(), s.len())
}

#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
mod imp {
    use std::ffi::{c_int, c_void};
    use std::sync::OnceLock;

    /// Address spans `[start, end)`.
    type Spans = Vec<(usize, usize)>;

    /// The fixed spans of the object holding this code, and its writable page spans outside
    /// them.
    #[derive(Default)]
    struct Object {
        fixed: Spans,
        writable: Spans,
    }

    static OBJECT: OnceLock<Object> = OnceLock::new();

    pub(super) fn contains(start: usize, end: usize) -> bool {
        let object = OBJECT.get_or_init(find);
        object.fixed.iter().any(|&(a, b)| a <= start && end <= b)
            && !object.writable.iter().any(|&(a, b)| start < b && a < end)
    }

    /// What the visit of the loaded objects looks for and finds.
    struct Search {
        /// An address in this crate's code: the object that holds it is ours.
        anchor: usize,
        page: usize,
        object: Option<Object>,
    }

    fn find() -> Object {
        // SAFETY: sysconf has no preconditions.
        let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
            p if p > 0 && (p as usize).is_power_of_two() => p as usize,
            _ => return Object::default(),
        };
        let mut search = Search {
            anchor: contains as fn(usize, usize) -> bool as usize,
            page,
            object: None,
        };
        // SAFETY: `visit` matches the callback type and only reads the headers it is given
        // during the call; `search` outlives the call.
        unsafe {
            libc::dl_iterate_phdr(Some(visit), (&mut search as *mut Search).cast::<c_void>());
        }
        search.object.unwrap_or_default()
    }

    /// Looks at one loaded object; stops the iteration (returns 1) at ours.
    unsafe extern "C" fn visit(
        info: *mut libc::dl_phdr_info,
        _size: usize,
        data: *mut c_void,
    ) -> c_int {
        // SAFETY: `data` is the `Search` that `find` passed, borrowed by no one else during
        // the iteration; `info` and its `dlpi_phnum` headers at `dlpi_phdr` are valid for this
        // call (the loader's contract).
        let (search, info) = unsafe { (&mut *data.cast::<Search>(), &*info) };
        let headers = if info.dlpi_phdr.is_null() {
            &[][..]
        } else {
            // SAFETY: as above.
            unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) }
        };
        let base = info.dlpi_addr as usize;
        let span = |h: &libc::Elf64_Phdr| {
            let start = base.wrapping_add(h.p_vaddr as usize);
            (start, start.saturating_add(h.p_memsz as usize))
        };
        let ours = headers.iter().any(|h| {
            let (start, end) = span(h);
            h.p_type == libc::PT_LOAD && (start..end).contains(&search.anchor)
        });
        if !ours {
            return 0;
        }
        let down = |a: usize| a & !(search.page - 1);
        let up = |a: usize| down(a.saturating_add(search.page - 1));
        let mut object = Object::default();
        let mut relro = Vec::new();
        for h in headers {
            let (start, end) = span(h);
            match h.p_type {
                libc::PT_LOAD if h.p_flags & libc::PF_W == 0 => object.fixed.push((start, end)),
                libc::PT_LOAD => object.writable.push((down(start), up(end))),
                // The loader protects the whole pages inside it (rounding its end down).
                libc::PT_GNU_RELRO => relro.push((down(start), down(end))),
                _ => {}
            }
        }
        // What the relocation protects is fixed, and no longer writable.
        object.fixed.extend_from_slice(&relro);
        for &(a, b) in &relro {
            object.writable = object
                .writable
                .iter()
                .flat_map(|&(s, e)| [(s, e.min(a)), (s.max(b), e)])
                .filter(|&(s, e)| s < e)
                .collect();
        }
        search.object = Some(object);
        1
    }
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
mod imp {
    pub(super) fn contains(_start: usize, _end: usize) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU8;

    /// A static the program may write to (interior mutability puts it in writable memory).
    static WRITABLE: [AtomicU8; 16] = [const { AtomicU8::new(1) }; 16];

    #[test]
    fn literals_and_constants_are_fixed_and_the_heap_stack_and_writable_statics_are_not() {
        let tags: &[(&str, &str)] = &[("status", "200"), ("method", "GET")];
        let on_heap = String::from("status");
        let on_stack = [b's'; 8];
        let expected = cfg!(all(target_os = "linux", target_pointer_width = "64"));
        assert_eq!(is_fixed_str("server.numRequests"), expected);
        assert_eq!(
            is_fixed(tags.as_ptr().cast(), std::mem::size_of_val(tags)),
            expected
        );
        assert!(!is_fixed_str(&on_heap));
        assert!(!is_fixed(on_stack.as_ptr(), on_stack.len()));
        assert!(!is_fixed(WRITABLE.as_ptr().cast(), WRITABLE.len()));
        assert!(is_fixed_str(""), "no bytes cannot change");
        assert!(
            !is_fixed(usize::MAX as *const u8, 2),
            "a span past the address space"
        );
    }
}
