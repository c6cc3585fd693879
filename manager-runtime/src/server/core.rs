//! The dispatch core of one server: the registry, the object table with its
//! references, and the dispatch of one call or creation, whichever
//! protocol and connection it came through. It implements [`Host`], what a
//! served object may ask of its server. Nothing here knows a socket.
#![forbid(unsafe_code)]

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use super::metrics::Metrics;
use super::table::{Entry, Table};
use crate::address::Address;
use crate::error::RemoteError;
use crate::object::MethodRef;
use crate::object::{CallContext, Host, Object, Outcome, RemoteRefs, ReplyFuture};
use crate::registry::{Created, Registry};
use crate::token::Token;
use crate::wire::{self, DebugEntry};

/// An object as it is served: itself, its typeid, its exposed set.
pub(super) type Served = (
    Arc<dyn Object>,
    &'static str,
    Option<&'static [&'static str]>,
);

/// The objects one server serves and how calls reach them.
pub(super) struct Core {
    pub(super) registry: Registry,
    pub(super) table: Mutex<Table>,
    pub(super) next_id: AtomicU64,
    pub(super) address: Address,
    /// This process's sessions on other servers, for objects held here
    /// that live there.
    pub(super) remote: Arc<dyn RemoteRefs>,
    /// Where the built-ins' state lives when not here (Redis): this
    /// server is then one gateway among any number.
    #[cfg(feature = "redis")]
    pub(super) backend: Option<Arc<crate::backend::RedisStore>>,
    /// Calls, objects and sessions through the `metrics` facade, if asked.
    pub(super) metrics: Option<Arc<Metrics>>,
}

impl Core {
    /// Change the table with `f`; the object and session gauges follow.
    fn changed<R>(&self, f: impl FnOnce(&mut Table) -> R) -> R {
        let mut table = self.table.lock().unwrap();
        let result = f(&mut table);
        if let Some(metrics) = &self.metrics {
            metrics.table(table.objects.len(), table.sessions.len());
        }
        result
    }

    fn insert(
        &self,
        session: u128,
        object: Arc<dyn Object>,
        typeid: &'static str,
        exposed: Option<&'static [&'static str]>,
    ) -> Token {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.insert_as(session, id, object, typeid, exposed)
    }

    /// Serve `object` as `id` with one reference held by `session`; an
    /// object already served as `id` (a singleton of the backend, or an
    /// object opened from it) gains that reference instead.
    fn insert_as(
        &self,
        session: u128,
        id: u64,
        object: Arc<dyn Object>,
        typeid: &'static str,
        exposed: Option<&'static [&'static str]>,
    ) -> Token {
        tracing::debug!(target: "managers::server", id, typeid, "object created");
        let entry = Entry {
            object,
            typeid,
            exposed,
            refcount: 1,
        };
        self.changed(|table| {
            if !table.objects.contains_key(&id) || table.incref(session, id).is_err() {
                table.insert(id, entry, session);
            }
        });
        Token {
            typeid: typeid.to_string(),
            address: self.address.clone(),
            id,
        }
    }

    /// The object `id` served here, or, with the state in Redis, made by
    /// a gateway (this or another) and opened for the caller.
    fn find(&self, id: u64) -> Result<Served, RemoteError> {
        let here = {
            let table = self.table.lock().unwrap();
            table
                .objects
                .get(&id)
                .map(|e| (Arc::clone(&e.object), e.typeid, e.exposed))
        };
        match here {
            Some(found) => Ok(found),
            None => self.opened(id)?.ok_or(RemoteError::NoSuchObject(id)),
        }
    }

    /// The object `id` opened from the backend, not yet served here; an
    /// error if the backend could not be asked.
    #[cfg(feature = "redis")]
    fn opened(&self, id: u64) -> Result<Option<Served>, RemoteError> {
        let Some(store) = &self.backend else {
            return Ok(None);
        };
        let object = store.open(id, |typeid| self.registry.redis_target(typeid)?.ok())?;
        Ok(object.map(|object| {
            let (typeid, exposed) = object.served_as();
            (object as Arc<dyn Object>, typeid, exposed)
        }))
    }

    #[cfg(not(feature = "redis"))]
    fn opened(&self, _id: u64) -> Result<Option<Served>, RemoteError> {
        Ok(None)
    }

    /// A new object of `typeid`: in the backend if its type lives there
    /// (with the id it has there), else here.
    fn make(&self, typeid: &str, args: &[u8]) -> Result<(Option<u64>, Created), RemoteError> {
        #[cfg(feature = "redis")]
        if let Some(store) = &self.backend {
            if let Some(target) = self.registry.redis_target(typeid) {
                let target = target?;
                let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                let (id, object) = store.create(target, args, id)?;
                let created = Created {
                    object,
                    typeid: target.typeid,
                    exposed: target.exposed,
                };
                return Ok((Some(id), created));
            }
        }
        Ok((None, self.registry.create(typeid, args)?))
    }

    /// The object `id` and the index of `method` in its table, checked:
    /// exposed, and the signature the caller was built with. The index
    /// the caller gave is tried first; only when the method there is
    /// another one is the table searched by name.
    fn lookup(
        &self,
        id: u64,
        method: MethodRef<'_>,
    ) -> Result<(Arc<dyn Object>, usize), RemoteError> {
        let (object, typeid, exposed) = self.find(id)?;
        let not_exposed = || RemoteError::NotExposed {
            typeid: typeid.to_string(),
            method: method.name.to_string(),
        };
        let methods = object.methods();
        let hinted = method
            .index
            .map(|index| index as usize)
            .filter(|&index| methods.get(index).is_some_and(|m| m.name == method.name));
        let index = match hinted {
            Some(index) => index,
            None => methods
                .iter()
                .position(|m| m.name == method.name)
                .ok_or_else(not_exposed)?,
        };
        if let Some(exposed) = exposed {
            if !exposed.contains(&method.name) {
                return Err(not_exposed());
            }
        }
        if methods[index].fingerprint != method.fingerprint {
            return Err(RemoteError::SignatureMismatch {
                typeid: typeid.to_string(),
                method: method.name.to_string(),
            });
        }
        Ok((object, index))
    }

    pub(super) fn call(
        self: &Arc<Self>,
        session: u128,
        id: u64,
        method: MethodRef<'_>,
        args: &[u8],
    ) -> Outcome {
        self.call_as(session, id, method, args, false)
    }

    /// [`call`](Self::call), `dynamic` saying whether the arguments and
    /// the result are `Value`s (a Python client's call).
    pub(super) fn call_as(
        self: &Arc<Self>,
        session: u128,
        id: u64,
        method: MethodRef<'_>,
        args: &[u8],
        dynamic: bool,
    ) -> Outcome {
        let Some(metrics) = &self.metrics else {
            return self.dispatch(session, id, method, args, dynamic);
        };
        let started = Instant::now();
        match self.dispatch(session, id, method, args, dynamic) {
            Outcome::Ready(result) => {
                metrics.call_done(started, result.is_ok());
                Outcome::Ready(result)
            }
            Outcome::Pending(future) => {
                let metrics = Arc::clone(metrics);
                Outcome::pending(async move {
                    let result = future.await;
                    metrics.call_done(started, result.is_ok());
                    result
                })
            }
        }
    }

    /// Run the call: look the method up and dispatch it in its context.
    fn dispatch(
        self: &Arc<Self>,
        session: u128,
        id: u64,
        method: MethodRef<'_>,
        args: &[u8],
        dynamic: bool,
    ) -> Outcome {
        let (object, index) = match self.lookup(id, method) {
            Ok(found) => found,
            Err(e) => return Outcome::Ready(Err(e)),
        };
        let cx = CallContext {
            server: Arc::clone(self) as Arc<dyn Host>,
            session,
            object: Some(id),
            dynamic,
        };
        match std::panic::catch_unwind(AssertUnwindSafe(|| {
            cx.enter(|| object.call(index, args, &cx))
        })) {
            Ok(Outcome::Pending(future)) => Outcome::Pending(Box::pin(CatchUnwind(future, cx))),
            Ok(ready) => ready,
            Err(panic) => Outcome::Ready(Err(panicked(id, method.name, &*panic))),
        }
    }

    pub(super) fn create(
        self: &Arc<Self>,
        session: u128,
        typeid: &str,
        args: &[u8],
    ) -> Result<Vec<u8>, RemoteError> {
        let token = self.create_as(session, typeid, args, false)?;
        wire::encode(&token).map_err(|e| RemoteError::Encode(e.to_string()))
    }

    /// Create an object of `typeid` with one reference for `session`;
    /// `dynamic`: the arguments are a `Value` list (a Python client's).
    pub(super) fn create_as(
        self: &Arc<Self>,
        session: u128,
        typeid: &str,
        args: &[u8],
        dynamic: bool,
    ) -> Result<Token, RemoteError> {
        // Constructors run in a call context too, so a built object can take
        // its server link or resolve a token it was given.
        let cx = CallContext {
            server: Arc::clone(self) as Arc<dyn Host>,
            session,
            object: None,
            dynamic,
        };
        let made =
            std::panic::catch_unwind(AssertUnwindSafe(|| cx.enter(|| self.make(typeid, args))))
                .map_err(|panic| panicked(0, typeid, &*panic))?;
        let (id, made) = made?;
        Ok(match id {
            Some(id) => self.insert_as(session, id, made.object, made.typeid, made.exposed),
            None => self.insert(session, made.object, made.typeid, made.exposed),
        })
    }

    pub(super) fn decref(&self, session: u128, id: u64, count: u64) {
        let dead = self.changed(|table| table.release(session, id, count));
        drop(dead);
    }

    /// A connection of `session` opened.
    pub(super) fn join(&self, session: u128) {
        self.changed(|table| table.join(session));
    }

    /// A connection of `session` closed (with the last, its references go).
    pub(super) fn leave(&self, session: u128) {
        let (dead, gone) = self.changed(|table| {
            let dead = table.leave(session);
            (dead, !table.sessions.contains_key(&session))
        });
        drop(dead);
        if gone {
            self.left(session);
        }
    }

    /// `session` has no connection left: what it holds in the backend
    /// (locks) goes too.
    fn left(&self, _session: u128) {
        #[cfg(feature = "redis")]
        if let Some(store) = &self.backend {
            store.session_left(_session);
        }
    }

    /// Release every reference `session` holds; its connections stay.
    pub(super) fn release_all(&self, session: u128) {
        let dead = self.changed(|table| table.release_all(session));
        drop(dead);
    }

    /// Release one reference to `id` held by the first of `sessions` that
    /// holds one (a CPython client's decref: its own, else the shared
    /// session of peers that could not be named).
    pub(super) fn release_one(&self, sessions: &[u128], id: u64) {
        let dead = self.changed(|table| {
            let holder = sessions.iter().copied().find(|&s| table.holds(s, id));
            holder.and_then(|session| table.release(session, id, 1))
        });
        drop(dead);
    }

    /// The object `id`, the typeid it is served as and its exposed set.
    pub(super) fn served(&self, id: u64) -> Option<Served> {
        self.find(id).ok()
    }

    pub(super) fn number_of_objects(&self) -> usize {
        self.table.lock().unwrap().objects.len()
    }

    pub(super) fn debug_info(&self) -> Vec<DebugEntry> {
        let table = self.table.lock().unwrap();
        let mut entries: Vec<_> = table
            .objects
            .iter()
            .map(|(&id, e)| DebugEntry {
                id,
                typeid: e.typeid.to_string(),
                refcount: e.refcount,
            })
            .collect();
        entries.sort_by_key(|e| e.id);
        entries
    }
}

impl Host for Core {
    fn address(&self) -> &Address {
        &self.address
    }

    fn object(&self, id: u64) -> Result<Arc<dyn Object>, RemoteError> {
        let table = self.table.lock().unwrap();
        let entry = table
            .objects
            .get(&id)
            .ok_or(RemoteError::NoSuchObject(id))?;
        Ok(Arc::clone(&entry.object))
    }

    fn retain_internal(&self, id: u64) -> Result<(), RemoteError> {
        self.table.lock().unwrap().retain(id)
    }

    fn release_internal(&self, id: u64) {
        let dead = self.changed(|table| table.unref(id, 1));
        drop(dead);
    }

    fn incref(&self, session: u128, id: u64) -> Result<(), RemoteError> {
        let result = self.table.lock().unwrap().incref(session, id);
        match result {
            // Made by another gateway: served here from now on.
            Err(RemoteError::NoSuchObject(_)) => match self.opened(id)? {
                Some((object, typeid, exposed)) => {
                    self.insert_as(session, id, object, typeid, exposed);
                    Ok(())
                }
                None => result,
            },
            result => result,
        }
    }

    #[cfg(feature = "redis")]
    fn adopt(&self, session: u128, token: &Token) -> bool {
        // The registry first: asking Redis about the address is a round
        // trip, needless for a type it does not keep.
        matches!(self.registry.redis_target(&token.typeid), Some(Ok(_)))
            && self
                .backend
                .as_ref()
                .is_some_and(|backend| backend.is_gateway(&token.address))
            && self.incref(session, token.id).is_ok()
    }

    fn insert_for(&self, session: u128, object: Arc<dyn Object>, typeid: &'static str) -> Token {
        let exposed = self.registry.get(typeid).and_then(|e| e.exposed);
        self.insert(session, object, typeid, exposed)
    }

    fn remote(&self) -> &dyn RemoteRefs {
        &*self.remote
    }
}

/// A method (or constructor, object 0) panicked: log it, and the error the
/// caller gets.
fn panicked(object: u64, method: &str, panic: &(dyn std::any::Any + Send)) -> RemoteError {
    let message = panic_message(panic);
    tracing::error!(target: "managers::server", object, method, panic = %message, "a served method panicked");
    RemoteError::Panic(message)
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-text payload".to_string()
    }
}

/// Polls a method's future inside its call context, and turns a panic into
/// that call's error.
struct CatchUnwind(ReplyFuture, CallContext);

impl Future for CatchUnwind {
    type Output = Result<Vec<u8>, RemoteError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let (future, call) = (&mut this.0, &this.1);
        match std::panic::catch_unwind(AssertUnwindSafe(|| call.enter(|| future.as_mut().poll(cx))))
        {
            Ok(poll) => poll,
            Err(panic) => Poll::Ready(Err(panicked(
                call.object.unwrap_or(0),
                "an async method",
                &*panic,
            ))),
        }
    }
}
