//! Which executable image runs, and which functions of it may be called
//! from an offset another process sent.
//!
//! A child process is this program re-executed (`/proc/self/exe`), so a
//! function of the parent is at the same offset from the start of the
//! child's image, wherever address-space randomisation put that image. An
//! offset is only meaningful in the very same image, so every message that
//! carries one carries the image's identity too ([`ImageId`]: the GNU build
//! id the linker writes into the ELF notes, or the executable file's
//! identity when there is none), and the receiver refuses a message from
//! any other image, or from an image it cannot identify, with a clear
//! error.
//!
//! That check is about meaning; soundness does not rest on it. An offset
//! crosses only as a [`FnRef<F>`], and no `FnRef<F>` exists that is not the
//! entry of a function of type `F`: each function that may cross (a
//! trampoline of `target.rs`, monomorphised for one target) is listed by
//! the compiler itself in a linker section of its kind ([`entry!`]); a
//! process builds the sorted table of that section's entries lying in its
//! executable segments once, and decoding a `FnRef` checks the offset
//! against it. A forged, shifted or garbled offset, or one into data, is an
//! error where it is decoded: nothing can make a process jump elsewhere.

use std::marker::PhantomData;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ProcessError, Result};

/// The identity of an executable image: equal in two processes only if they
/// run the same code at the same offsets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum ImageId {
    /// The GNU build id (a hash of the linked image).
    BuildId(Vec<u8>),
    /// No build id: the executable file (device, inode, size, mtime).
    File(u64, u64, u64, i64),
    /// Neither a build id nor a readable executable: equal to nothing, so
    /// no offset crosses to or from this process.
    Unknown,
}

/// The main executable's load address, executable segments and identity.
struct Image {
    base: usize,
    /// `[start, end)` of every loaded executable segment.
    code: Vec<(usize, usize)>,
    id: ImageId,
}

/// What `dl_iterate_phdr` reports of the first object: the main program.
struct Found {
    base: usize,
    code: Vec<(usize, usize)>,
    build_id: Option<Vec<u8>>,
}

const NT_GNU_BUILD_ID: u32 = 3;

/// The `(type, name, desc)` of every note in `notes`, an in-memory note
/// segment (entries aligned to 4 bytes).
fn parse_notes(notes: &[u8]) -> Vec<(u32, &[u8], &[u8])> {
    let word = |at: usize| -> Option<u32> {
        let bytes = notes.get(at..at.checked_add(4)?)?;
        Some(u32::from_ne_bytes(bytes.try_into().ok()?))
    };
    let align = |n: usize| n.checked_add(3).map(|n| n & !3);
    let mut found = Vec::new();
    let mut at = 0usize;
    while let (Some(namesz), Some(descsz), Some(kind)) = (word(at), word(at + 4), word(at + 8)) {
        let name_at = at + 12;
        let Some(desc_at) = align(namesz as usize).and_then(|n| name_at.checked_add(n)) else {
            break;
        };
        let Some(end) = align(descsz as usize).and_then(|n| desc_at.checked_add(n)) else {
            break;
        };
        let (Some(name), Some(desc)) = (
            notes.get(name_at..name_at + namesz as usize),
            notes.get(desc_at..desc_at + descsz as usize),
        ) else {
            break;
        };
        found.push((kind, name, desc));
        at = end;
    }
    found
}

unsafe extern "C" fn first_object(
    info: *mut libc::dl_phdr_info,
    _size: libc::size_t,
    data: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: `data` is the `Option<Found>` `image` passed, and `info`
    // describes a loaded object whose program headers and loaded segments
    // stay mapped for the duration of this callback.
    let (out, info) = unsafe { (&mut *(data as *mut Option<Found>), &*info) };
    let base = info.dlpi_addr as usize;
    // SAFETY: the loader's program headers of this object, `dlpi_phnum` of
    // them at `dlpi_phdr`, mapped while the callback runs.
    let headers = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
    let mut found = Found {
        base,
        code: Vec::new(),
        build_id: None,
    };
    for header in headers {
        let start = base + header.p_vaddr as usize;
        match header.p_type {
            libc::PT_LOAD if header.p_flags & libc::PF_X != 0 => {
                found.code.push((start, start + header.p_memsz as usize))
            }
            libc::PT_NOTE => {
                // SAFETY: a note segment is part of a loaded segment, mapped
                // readable at `start` for `p_memsz` bytes.
                let notes = unsafe {
                    std::slice::from_raw_parts(start as *const u8, header.p_memsz as usize)
                };
                for (kind, name, desc) in parse_notes(notes) {
                    if kind == NT_GNU_BUILD_ID && name == b"GNU\0" && !desc.is_empty() {
                        found.build_id = Some(desc.to_vec());
                    }
                }
            }
            _ => {}
        }
    }
    *out = Some(found);
    1 // the first object is the main program: stop there
}

/// The executable file's identity, or `Unknown` when it cannot be read.
fn file_id() -> ImageId {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata("/proc/self/exe") {
        Ok(m) => ImageId::File(
            m.dev(),
            m.ino(),
            m.size(),
            m.mtime_nsec() + m.mtime() * 1_000_000_000,
        ),
        Err(_) => ImageId::Unknown,
    }
}

fn image() -> &'static Image {
    static IMAGE: OnceLock<Image> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let mut found: Option<Found> = None;
        // SAFETY: the callback only reads what the loader hands it and
        // writes through the pointer to `found`, which outlives the call.
        unsafe {
            libc::dl_iterate_phdr(
                Some(first_object),
                &mut found as *mut Option<Found> as *mut libc::c_void,
            );
        }
        let found = found.unwrap_or(Found {
            base: 0,
            code: Vec::new(),
            build_id: None,
        });
        Image {
            base: found.base,
            code: found.code,
            id: found.build_id.map_or_else(file_id, ImageId::BuildId),
        }
    })
}

/// This process's image identity.
pub(crate) fn image_id() -> ImageId {
    image().id.clone()
}

/// Refuse a message whose offsets were taken in another image, or in an
/// image that cannot be identified (this one or the sender's).
pub(crate) fn check_same_image(sender: &ImageId) -> Result<()> {
    let here = &image().id;
    if *here == ImageId::Unknown || *sender == ImageId::Unknown {
        return Err(Error::ProcessStart(
            "the executable image cannot be identified (no build id, /proc/self/exe \
             unreadable): no function can cross between processes"
                .into(),
        ));
    }
    if sender == here {
        Ok(())
    } else {
        Err(Error::ProcessStart(format!(
            "this process does not run the executable image of the sender \
             ({sender:?} there, {here:?} here): no function can cross"
        )))
    }
}

/// A kind of function that may cross to another process: a plain `fn`
/// pointer type whose functions the compiler lists in a linker section of
/// their own ([`entry!`] puts each one there), so that a process receiving
/// an offset can check it is the entry of a function of exactly this type.
///
/// # Safety
/// `from_addr(f.addr())` must give back `f`, and [`table`](Self::table)
/// must hold only addresses of functions of exactly this type.
pub(crate) unsafe trait Entry: Copy + 'static {
    /// What a function of this kind is, for error messages.
    const KIND: &'static str;
    /// The function's address.
    fn addr(self) -> usize;
    /// The function at `addr`.
    ///
    /// # Safety
    /// `addr` must be the address of a function of exactly this type.
    unsafe fn from_addr(addr: usize) -> Self;
    /// Every function of this kind in this image, sorted.
    fn table() -> &'static [usize];
}

/// Put the function `$f` (a path to a monomorphised function of an
/// [`Entry`] type) into the table of section `$section`: a pointer-sized
/// slot the linker gathers with every other slot of that name, between
/// `__start_$section` and `__stop_$section`. The slot is emitted wherever
/// the code around this macro is compiled, so every function a process can
/// make a [`FnRef`] of is in the table of the image that contains it. The
/// section is writable (the slots are relocated at load time) and marked
/// to be kept by the linker's garbage collection.
macro_rules! entry {
    ($section:literal, $f:path) => {
        // SAFETY: the assembly only emits a data slot holding the address
        // of `$f` into another section and returns to the current one; it
        // executes no instruction and touches no register or memory.
        unsafe {
            #[cfg(target_pointer_width = "64")]
            ::std::arch::asm!(
                concat!(".pushsection ", $section, ",\"awR\""),
                ".balign 8",
                ".quad {f}",
                ".popsection",
                f = sym $f,
                options(nomem, nostack, preserves_flags),
            );
            #[cfg(target_pointer_width = "32")]
            ::std::arch::asm!(
                concat!(".pushsection ", $section, ",\"awR\""),
                ".balign 4",
                ".long {f}",
                ".popsection",
                f = sym $f,
                options(nomem, nostack, preserves_flags),
            );
        }
    };
}
pub(crate) use entry;

/// Make the `fn` pointer type `$ty` an [`Entry`] whose table is section
/// `$section` (with its linker-made bounds `$start` and `$stop`).
macro_rules! entry_kind {
    ($ty:ty, $kind:literal, $section:literal, $start:ident, $stop:ident) => {
        // SAFETY: a plain fn pointer round-trips through its address; the
        // section holds only slots `entry!` emitted with functions of this
        // type, and the null slot `table` adds, which it drops.
        unsafe impl $crate::process::image::Entry for $ty {
            const KIND: &'static str = $kind;
            fn addr(self) -> usize {
                self as usize
            }
            unsafe fn from_addr(addr: usize) -> Self {
                // SAFETY: the caller promises a function of this type.
                unsafe { ::std::mem::transmute::<usize, $ty>(addr) }
            }
            fn table() -> &'static [usize] {
                static TABLE: ::std::sync::OnceLock<Vec<usize>> = ::std::sync::OnceLock::new();
                TABLE.get_or_init(|| {
                    // A null slot, so that the section (and its bounds)
                    // exists even in a program that makes no such function.
                    // SAFETY: as in `entry!`: data emitted into a section,
                    // nothing executed.
                    unsafe {
                        #[cfg(target_pointer_width = "64")]
                        ::std::arch::asm!(
                            concat!(".pushsection ", $section, ",\"awR\""),
                            ".balign 8",
                            ".quad 0",
                            ".popsection",
                            options(nomem, nostack, preserves_flags),
                        );
                        #[cfg(target_pointer_width = "32")]
                        ::std::arch::asm!(
                            concat!(".pushsection ", $section, ",\"awR\""),
                            ".balign 4",
                            ".long 0",
                            ".popsection",
                            options(nomem, nostack, preserves_flags),
                        );
                    }
                    extern "C" {
                        static $start: usize;
                        static $stop: usize;
                    }
                    let (start, stop) = (&raw const $start, &raw const $stop);
                    let len = (stop as usize - start as usize) / ::std::mem::size_of::<usize>();
                    // SAFETY: the linker defines the two bounds around the
                    // section's slots (pointer-sized and aligned, see
                    // `entry!`), relocated by the loader before `main` and
                    // never written afterwards.
                    let slots = unsafe { ::std::slice::from_raw_parts(start, len) };
                    $crate::process::image::entries(slots)
                })
            }
        }
    };
}
pub(crate) use entry_kind;

/// The functions a table's slots name: the non-null ones that lie in an
/// executable segment of the main program, sorted, once each.
pub(crate) fn entries(slots: &[usize]) -> Vec<usize> {
    let image = image();
    let mut found: Vec<usize> = slots
        .iter()
        .copied()
        .filter(|&addr| {
            image
                .code
                .iter()
                .any(|&(start, end)| (start..end).contains(&addr))
        })
        .collect();
    found.sort_unstable();
    found.dedup();
    found
}

/// A function of kind `F` of the main executable, as an offset from the
/// image's load address: what crosses to another process.
///
/// Every `FnRef<F>` names an entry of `F`'s table: [`new`](Self::new) and
/// decoding check it, so [`resolve`](Self::resolve) needs no unsafe
/// promise from its caller.
/// Whether the offset means the *same* function as in the process that
/// made it is a matter of the image ([`SameImage`]), not of soundness: any
/// entry of the table is a function of type `F`.
pub(crate) struct FnRef<F> {
    offset: u64,
    _type: PhantomData<F>,
}

impl<F> Clone for FnRef<F> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<F> Copy for FnRef<F> {}

impl<F> std::fmt::Debug for FnRef<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FnRef(+{:#x})", self.offset)
    }
}

impl<F: Entry> FnRef<F> {
    /// `function`, which must be an entry of its kind's table (made
    /// through [`entry!`]); anything else is an error.
    pub(crate) fn new(function: F) -> std::result::Result<Self, ProcessError> {
        let addr = function.addr();
        match addr.checked_sub(image().base) {
            Some(offset) if F::table().binary_search(&addr).is_ok() => Ok(FnRef {
                offset: offset as u64,
                _type: PhantomData,
            }),
            _ => Err(ProcessError::NotAnEntry {
                addr,
                kind: F::KIND,
            }),
        }
    }

    /// The entry at `offset`, if it is one of `F`'s table.
    pub(crate) fn from_offset(offset: u64) -> std::result::Result<Self, String> {
        let found = usize::try_from(offset)
            .ok()
            .and_then(|offset| image().base.checked_add(offset))
            .filter(|addr| F::table().binary_search(addr).is_ok());
        match found {
            Some(_) => Ok(FnRef {
                offset,
                _type: PhantomData,
            }),
            None => Err(format!(
                "offset {offset:#x} is not the entry of {} in this executable image: refused",
                F::KIND
            )),
        }
    }

    /// Its offset from the image's load address (what crosses).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn offset(self) -> u64 {
        self.offset
    }

    /// The function, in this process, once the message it came in is known
    /// to come from this very image (so that it is the *same* function).
    pub(crate) fn resolve(self, same: &SameImage) -> F {
        let _ = same;
        let addr = image().base + self.offset as usize;
        // SAFETY: `new` and `from_offset`, the only ways to make a FnRef,
        // checked that `addr` is in `F::table()`, whose every address is a
        // function of type `F` (the `Entry` contract).
        unsafe { F::from_addr(addr) }
    }
}

impl<F> Serialize for FnRef<F> {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        self.offset.serialize(serializer)
    }
}

impl<'de, F: Entry> Deserialize<'de> for FnRef<F> {
    /// Only an offset that is the entry of a function of kind `F` in this
    /// image decodes: a forged or garbled one is an error here, before
    /// anything could call it.
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        let offset = u64::deserialize(deserializer)?;
        FnRef::from_offset(offset).map_err(crate::error::de_error)
    }
}

/// Proof that a message's offsets were taken in this process's image.
pub(crate) struct SameImage(());

impl SameImage {
    /// Check the image a message names.
    pub(crate) fn check(parent: &ImageId) -> Result<SameImage> {
        check_same_image(parent).map(|()| SameImage(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seven() -> u32 {
        7
    }

    fn eight() -> u32 {
        8
    }

    type Test = fn() -> u32;
    entry_kind!(
        Test,
        "a test function",
        "managers_test_entries",
        __start_managers_test_entries,
        __stop_managers_test_entries
    );

    fn seven_entry() -> Test {
        entry!("managers_test_entries", seven);
        seven
    }

    static DATA: u64 = 42;

    #[test]
    fn an_entry_round_trips_through_its_offset() {
        let f = FnRef::new(seven_entry()).unwrap();
        let same = SameImage::check(&image_id()).unwrap();
        assert_eq!((f.resolve(&same))(), 7);
        let bytes = crate::codec::encode(&f).unwrap();
        let back: FnRef<Test> = crate::codec::decode(&bytes).unwrap();
        assert_eq!((back.resolve(&same))(), 7);
    }

    #[test]
    fn a_function_outside_the_table_is_refused() {
        seven_entry();
        let err = FnRef::new(eight as Test).expect_err("refused");
        assert!(err.to_string().contains("not a test function"), "{err}");
        // A function of libc lives in a shared library: not in any table.
        let getpid = libc::getpid as unsafe extern "C" fn() -> libc::pid_t as usize;
        assert!(Test::table().binary_search(&getpid).is_err());
    }

    #[test]
    fn forged_offsets_do_not_decode() {
        let good = FnRef::new(seven_entry()).unwrap().offset;
        let data = (&DATA as *const u64 as usize - image().base) as u64;
        let forged = [1i64, 3, 64, -64, 4096, 1 << 20, -1, -3]
            .iter()
            .map(|d| good.wrapping_add_signed(*d))
            .chain([
                0,
                data,
                u64::MAX,
                u64::MAX / 2,
                (eight as Test as usize - image().base) as u64,
            ]);
        for offset in forged {
            let bytes = crate::codec::encode(&offset).unwrap();
            let err = crate::codec::decode::<FnRef<Test>>(&bytes)
                .err()
                .unwrap_or_else(|| panic!("offset {offset:#x} decoded"));
            let text = crate::error::chain(&err);
            assert!(
                text.contains("is not the entry of a test function"),
                "{text}"
            );
        }
        for garbage in [&[][..], &[0xff][..], &[0xff; 11][..]] {
            assert!(crate::codec::decode::<FnRef<Test>>(garbage).is_err());
        }
    }

    #[test]
    fn the_table_holds_code_only() {
        let table = Test::table();
        assert!(table.binary_search(&(seven_entry() as usize)).is_ok());
        assert!(!table.contains(&0), "the null anchor is dropped");
        for &addr in table {
            assert!(image().code.iter().any(|&(s, e)| (s..e).contains(&addr)));
        }
    }

    #[test]
    fn the_image_has_an_identity_and_code() {
        assert!(!image().code.is_empty());
        assert!(
            matches!(image_id(), ImageId::BuildId(ref id) if !id.is_empty())
                || matches!(image_id(), ImageId::File(..))
        );
    }

    #[test]
    fn another_or_an_unknown_image_is_refused() {
        let other = ImageId::BuildId(vec![0; 20]);
        let err = SameImage::check(&other).err().expect("refused");
        assert!(err.to_string().contains("executable image"), "{err}");
        let err = SameImage::check(&ImageId::Unknown).err().expect("refused");
        assert!(err.to_string().contains("cannot be identified"), "{err}");
    }

    #[test]
    fn notes_are_parsed() {
        let mut notes = Vec::new();
        for word in [4u32, 3, NT_GNU_BUILD_ID] {
            notes.extend_from_slice(&word.to_ne_bytes());
        }
        notes.extend_from_slice(b"GNU\0");
        notes.extend_from_slice(&[1, 2, 3, 0]);
        let parsed = parse_notes(&notes);
        assert_eq!(
            parsed,
            vec![(NT_GNU_BUILD_ID, &b"GNU\0"[..], &[1u8, 2, 3][..])]
        );
        assert!(parse_notes(&notes[..10]).is_empty());
        let mut huge = notes.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(parse_notes(&huge).is_empty());
    }
}
