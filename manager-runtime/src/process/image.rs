//! Which executable image runs, and where a function lies in it.
//!
//! A child process is this program re-executed (`/proc/self/exe`), so a
//! function of the parent is at the same offset from the start of the
//! child's image, wherever address-space randomisation put that image. An
//! offset is only meaningful in the very same image, so every message that
//! carries one carries the image's identity too ([`ImageId`]: the GNU build
//! id the linker writes into the ELF notes, or the executable file's
//! identity when there is none), and the child refuses a message from any
//! other image with a clear error instead of jumping anywhere.
//!
//! A [`FnRef`] is made only from a function pointer of its type `F` that
//! lies in the main executable (a function of a shared library is refused:
//! its offset would mean nothing in the child), and turned back only into
//! an `F`: that is the whole argument for soundness.

use std::marker::PhantomData;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The identity of an executable image: equal in two processes only if they
/// run the same code at the same offsets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum ImageId {
    /// The GNU build id (a hash of the linked image).
    BuildId(Vec<u8>),
    /// No build id: the executable file (device, inode, size, mtime).
    File(u64, u64, u64, i64),
}

/// The main executable's load address and loaded ranges, and its identity.
struct Image {
    base: usize,
    /// `[start, end)` of every loaded segment.
    segments: Vec<(usize, usize)>,
    id: ImageId,
}

/// What `dl_iterate_phdr` reports of the first object: the main program.
struct Found {
    base: usize,
    segments: Vec<(usize, usize)>,
    build_id: Option<Vec<u8>>,
}

const NT_GNU_BUILD_ID: u32 = 3;

/// The `(type, name, desc)` of every note in `notes`, an in-memory note
/// segment (entries aligned to 4 bytes).
fn parse_notes(notes: &[u8]) -> Vec<(u32, &[u8], &[u8])> {
    let word = |at: usize| -> Option<u32> {
        let bytes = notes.get(at..at + 4)?;
        Some(u32::from_ne_bytes(bytes.try_into().ok()?))
    };
    let align = |n: usize| (n + 3) & !3;
    let mut found = Vec::new();
    let mut at = 0;
    while let (Some(namesz), Some(descsz), Some(kind)) = (word(at), word(at + 4), word(at + 8)) {
        let name_at = at + 12;
        let desc_at = name_at + align(namesz as usize);
        let end = desc_at + align(descsz as usize);
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
    // SAFETY: `data` is the `Option<Found>` `main_program` passed, and
    // `info` describes a loaded object whose program headers and loaded
    // segments stay mapped for the duration of this callback.
    let (out, info) = unsafe { (&mut *(data as *mut Option<Found>), &*info) };
    let base = info.dlpi_addr as usize;
    let headers = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
    let mut found = Found {
        base,
        segments: Vec::new(),
        build_id: None,
    };
    for header in headers {
        let start = base + header.p_vaddr as usize;
        match header.p_type {
            libc::PT_LOAD => found
                .segments
                .push((start, start + header.p_memsz as usize)),
            libc::PT_NOTE => {
                // SAFETY: a note segment is part of a loaded segment, mapped
                // readable at `start` for `p_memsz` bytes.
                let notes = unsafe {
                    std::slice::from_raw_parts(start as *const u8, header.p_memsz as usize)
                };
                for (kind, name, desc) in parse_notes(notes) {
                    if kind == NT_GNU_BUILD_ID && name == b"GNU\0" {
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

fn file_id() -> ImageId {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata("/proc/self/exe") {
        Ok(m) => ImageId::File(
            m.dev(),
            m.ino(),
            m.size(),
            m.mtime_nsec() + m.mtime() * 1_000_000_000,
        ),
        Err(_) => ImageId::File(0, 0, 0, 0),
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
            segments: Vec::new(),
            build_id: None,
        });
        Image {
            base: found.base,
            segments: found.segments,
            id: found.build_id.map_or_else(file_id, ImageId::BuildId),
        }
    })
}

/// This process's image identity.
pub(crate) fn image_id() -> ImageId {
    image().id.clone()
}

/// Refuse a message whose offsets were taken in another image.
pub(crate) fn check_same_image(parent: &ImageId) -> Result<()> {
    if *parent == image().id {
        Ok(())
    } else {
        Err(Error::ProcessStart(format!(
            "this process does not run the executable image of its parent \
             ({parent:?} there, {:?} here): no function can cross",
            image().id
        )))
    }
}

/// A function pointer type a [`FnRef`] can carry.
///
/// # Safety
/// `from_addr(f.addr())` must give back `f`: implemented only for plain
/// `fn` pointer types.
pub(crate) unsafe trait FnPtr: Copy {
    /// The function's address.
    fn addr(self) -> usize;
    /// The function at `addr`.
    ///
    /// # Safety
    /// `addr` must be the address of a function of exactly this type.
    unsafe fn from_addr(addr: usize) -> Self;
}

macro_rules! fn_ptr {
    ($($ty:ty),* $(,)?) => {$(
        // SAFETY: a plain fn pointer round-trips through its address.
        unsafe impl $crate::process::image::FnPtr for $ty {
            fn addr(self) -> usize {
                self as usize
            }
            unsafe fn from_addr(addr: usize) -> Self {
                // SAFETY: the caller promises a function of this type.
                unsafe { std::mem::transmute::<usize, $ty>(addr) }
            }
        }
    )*};
}
pub(crate) use fn_ptr;

/// A function of type `F` of the main executable, as an offset from the
/// image's load address: what crosses to a child process.
#[derive(Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct FnRef<F> {
    offset: u64,
    #[serde(skip)]
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

fn in_image(addr: usize) -> bool {
    image()
        .segments
        .iter()
        .any(|&(start, end)| (start..end).contains(&addr))
}

impl<F: FnPtr> FnRef<F> {
    /// `function`, which must lie in the main executable (not in a shared
    /// library, whose offsets mean nothing in a child).
    pub(crate) fn new(function: F) -> Result<Self> {
        let addr = function.addr();
        if !in_image(addr) {
            return Err(Error::ProcessStart(format!(
                "the function at {addr:#x} is not in the main executable (a shared \
                 library's function cannot be found in a child process)"
            )));
        }
        Ok(FnRef {
            offset: (addr - image().base) as u64,
            _type: PhantomData,
        })
    }

    /// The function, in this process. The caller has checked (with
    /// [`check_same_image`]) that the offset was taken in this very image.
    pub(crate) fn resolve(self, checked: &SameImage) -> Result<F> {
        let _ = checked;
        let addr = image().base.checked_add(self.offset as usize);
        match addr.filter(|&a| in_image(a)) {
            // SAFETY: the image is the one the offset was taken in (the
            // `SameImage` proof), where it was the offset of an `F` (only
            // `new` makes a `FnRef<F>`, from an `F`); the same code is at
            // the same offset here.
            Some(addr) => Ok(unsafe { F::from_addr(addr) }),
            None => Err(Error::ProcessStart(format!(
                "offset {:#x} is outside this executable image",
                self.offset
            ))),
        }
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

    fn_ptr!(fn() -> u32);

    #[test]
    fn a_function_round_trips_through_its_offset() {
        let f = FnRef::new(seven as fn() -> u32).unwrap();
        let same = SameImage::check(&image_id()).unwrap();
        assert_eq!((f.resolve(&same).unwrap())(), 7);
    }

    #[test]
    fn the_image_has_an_identity_and_segments() {
        assert!(!image().segments.is_empty());
        assert!(
            matches!(image_id(), ImageId::BuildId(ref id) if !id.is_empty())
                || matches!(image_id(), ImageId::File(..))
        );
    }

    #[test]
    fn another_image_is_refused() {
        let other = ImageId::BuildId(vec![0; 20]);
        let err = SameImage::check(&other).err().expect("refused");
        assert!(err.to_string().contains("executable image"), "{err}");
    }

    #[test]
    fn an_address_outside_the_image_is_refused() {
        // A function of libc lives in a shared library.
        let getpid = libc::getpid as unsafe extern "C" fn() -> libc::pid_t;
        assert!(!in_image(getpid as usize));
        let f: FnRef<fn() -> u32> = FnRef {
            offset: u64::MAX / 2,
            _type: PhantomData,
        };
        let same = SameImage::check(&image_id()).unwrap();
        assert!(f.resolve(&same).is_err());
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
    }
}
