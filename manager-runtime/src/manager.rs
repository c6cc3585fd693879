//! Manager lifecycle, after Python's `BaseManager`: start a server process,
//! connect to a running one, or serve in this process.
#![forbid(unsafe_code)]

use std::process::ExitStatus;
use std::sync::Mutex;

use serde::Serialize;

use crate::address::Address;
use crate::client::Client;
use crate::error::{Error, ProcessError, Result};
use crate::options::ManagerOptions;
use crate::proxy::Proxy;
use crate::registry::Registry;
use crate::server::Server;
use crate::spawn::RegistryFns;
use crate::wire::DebugEntry;

pub(crate) enum State {
    Initial,
    Started(crate::spawn::Running),
    Connected,
    ShutDown(Option<ExitStatus>),
}

/// The manager every `manager!` type derefs to: lifecycle and bookkeeping.
///
/// A manager is started once (`start()` in a child process,
/// `start_in_thread()`), or connected to a server that runs elsewhere
/// (`connect()`), or turned into a [`Server`] to serve in this process
/// (`get_server()`); `shutdown()`, or dropping it, ends what it started.
///
/// ```
/// # extern crate manager_runtime as managers;
/// use managers::sync::SyncManager;
/// use managers::{Error, ManagerOptions};
///
/// # fn main() -> managers::Result<()> {
/// let owner = SyncManager::with_options(ManagerOptions::new().address("127.0.0.1:0"));
/// owner.start_in_thread()?;
/// let shared = owner.dict::<String, u32>()?;
/// shared.set("visits".into(), 1)?;
///
/// // Another manager of the same type reaches it by address (and key).
/// let address = owner.address().expect("started");
/// let guest = SyncManager::with_options(ManagerOptions::new().address(address));
/// guest.connect()?;
/// let seen: managers::sync::DictProxy<String, u32> =
///     guest.proxy_from_token(managers::Proxy::token(&shared))?;
/// assert_eq!(seen.get("visits")?, 1);
///
/// drop(seen);
/// guest.shutdown()?; // its session's references go with it, confirmed
/// drop(shared);
/// assert_eq!(owner.number_of_objects()?, 0); // nothing leaked
/// owner.shutdown()?;
/// assert!(matches!(owner.start_in_thread(), Err(Error::ShutDown)));
/// # Ok(()) }
/// ```
pub struct BaseManager {
    /// The registry function, monomorphised (built here, or in a server
    /// process); a closure given as one is kept as the error every start
    /// reports.
    registry: std::result::Result<RegistryFns, ProcessError>,
    options: ManagerOptions,
    state: Mutex<State>,
    client: Mutex<Option<Client>>,
}

impl BaseManager {
    /// A manager serving the typeids `registry` builds. Nothing runs until
    /// [`start`](Self::start), [`connect`](Self::connect) or
    /// [`get_server`](Self::get_server).
    ///
    /// `registry` is a `fn` item (such as the `__registry` of a
    /// [`manager!`](crate::manager) type or `SyncManager::registry`): a
    /// started server process calls it to build what it serves. A closure
    /// is refused ([`ProcessError::Closure`]) when the manager starts.
    pub fn new<R>(registry: R, options: ManagerOptions) -> Self
    where
        R: crate::process::Function<(), Output = Registry>,
    {
        crate::process::target::fn_item!(R, "BaseManager::new");
        BaseManager {
            registry: RegistryFns::of(registry),
            options,
            state: Mutex::new(State::Initial),
            client: Mutex::new(None),
        }
    }

    /// Build the registry in this process.
    fn registry(&self) -> Result<Registry> {
        (self.registry.clone()?.build)()
    }

    /// The options this manager was built with.
    pub fn options(&self) -> &ManagerOptions {
        &self.options
    }

    /// Start the server in a child process (this binary, re-executed; see
    /// [`bootstrap`](crate::bootstrap)) and connect to it. Returns once the
    /// server listens.
    pub fn start(&self) -> Result<()> {
        self.start_inner(None)
    }

    /// Like [`start`](Self::start), running `initializer(initargs...)`
    /// once in the server process before it serves (Python's
    /// `start(initializer, initargs)`). The initializer is a `fn` item, as
    /// a [`Process`](crate::Process)'s target; `initargs` the tuple of its arguments, plain serde values.
    /// If it returns an `Err` (or panics), `start` fails.
    pub fn start_with_initializer<F, A>(&self, initializer: F, initargs: A) -> Result<()>
    where
        F: crate::process::Function<A>,
        F::Output: crate::process::Exit,
        A: Serialize + serde::de::DeserializeOwned + 'static,
    {
        crate::process::target::fn_item!(F, "BaseManager::start_with_initializer");
        let initializer = crate::spawn::Initializer::new(initializer, &initargs)?;
        self.start_inner(Some(initializer))
    }

    fn start_inner(&self, initializer: Option<crate::spawn::Initializer>) -> Result<()> {
        let mut state = self.state.lock().unwrap();
        self.check_startable(&state)?;
        let running = (self.registry.clone()?.start)(&self.options, initializer)?;
        self.attach(running.address.clone())?;
        *state = State::Started(running);
        Ok(())
    }

    /// Start the server on a thread of this process (for tests and for
    /// programs that want no child process).
    pub fn start_in_thread(&self) -> Result<()> {
        let mut state = self.state.lock().unwrap();
        self.check_startable(&state)?;
        let running = crate::spawn::start_thread(self.registry()?, &self.options)?;
        self.attach(running.address.clone())?;
        *state = State::Started(running);
        Ok(())
    }

    fn check_startable(&self, state: &State) -> Result<()> {
        self.options.checked_address()?;
        match state {
            State::Initial => Ok(()),
            State::Started(_) => Err(Error::AlreadyStarted),
            State::Connected => Err(Error::AlreadyConnected),
            State::ShutDown(_) => Err(Error::ShutDown),
        }
    }

    fn attach(&self, address: Address) -> Result<()> {
        let client = Client::connect(address, &self.options)?;
        *self.client.lock().unwrap() = Some(client);
        Ok(())
    }

    /// Connect to a server that is already running at the configured address.
    pub fn connect(&self) -> Result<()> {
        let mut state = self.state.lock().unwrap();
        match *state {
            State::Initial => {}
            State::Connected => return Ok(()),
            State::Started(_) => return Err(Error::AlreadyStarted),
            State::ShutDown(_) => return Err(Error::ShutDown),
        }
        let address = self.options.checked_address()?.ok_or(Error::NoAddress)?;
        self.attach(address)?;
        *state = State::Connected;
        Ok(())
    }

    /// A server for this manager's typeids, bound to the configured address
    /// (a fresh Unix socket if none) and ready to
    /// [`serve_forever`](Server::serve_forever) in this process.
    pub fn get_server(&self) -> Result<Server> {
        self.options.checked_address()?;
        crate::spawn::bind(self.registry()?, &self.options)
    }

    /// Stop a server this manager started and disconnect. Idempotent.
    pub fn shutdown(&self) -> Result<()> {
        let mut state = self.state.lock().unwrap();
        let previous = std::mem::replace(&mut *state, State::ShutDown(None));
        self.client.lock().unwrap().take();
        match previous {
            State::Started(running) => {
                *state = State::ShutDown(running.stop(self.options.shutdown_timeout)?);
                Ok(())
            }
            State::ShutDown(status) => {
                *state = State::ShutDown(status);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The exit status of the server process this manager started, once it
    /// has been shut down (Python's `manager._process.exitcode`).
    pub fn server_exit_status(&self) -> Option<ExitStatus> {
        match &*self.state.lock().unwrap() {
            State::ShutDown(status) => *status,
            _ => None,
        }
    }

    /// The server's address, once started or connected.
    pub fn address(&self) -> Option<Address> {
        match &*self.state.lock().unwrap() {
            State::Started(running) => Some(running.address.clone()),
            State::Connected => self.options.address.clone(),
            _ => None,
        }
    }

    /// The process id of the server this manager started in a child
    /// process (`None` for a thread server, a connected manager, or before
    /// start).
    pub fn server_pid(&self) -> Option<u32> {
        match &*self.state.lock().unwrap() {
            State::Started(running) => running.pid(),
            _ => None,
        }
    }

    /// The client session of this manager.
    pub fn client(&self) -> Result<Client> {
        self.client.lock().unwrap().clone().ok_or(Error::NotStarted)
    }

    /// Create an object of `typeid` on the server and return its proxy.
    pub fn create<P: Proxy, A: Serialize>(&self, typeid: &str, args: &A) -> Result<P> {
        self.client()?.create(typeid, args)
    }

    /// Async form of [`create`](Self::create).
    pub async fn create_async<P: Proxy, A: Serialize>(&self, typeid: &str, args: &A) -> Result<P> {
        let client = self.client()?;
        client.create_async(typeid, args).await
    }

    /// A proxy of type `P` to the object `token` names, for a process that
    /// was handed the token (see [`Token::to_text`](crate::proxy::Token::to_text))
    /// rather than the proxy: Python's pickled proxy, rebuilt.
    pub fn proxy_from_token<P: serde::de::DeserializeOwned>(
        &self,
        token: &crate::proxy::Token,
    ) -> Result<P> {
        self.client()?.proxy_from_token(token)
    }

    /// How many objects the server holds (Python's
    /// `_number_of_objects()`), to check nothing leaked.
    pub fn number_of_objects(&self) -> Result<usize> {
        self.client()?.number_of_objects()
    }

    /// Every object the server holds, with its typeid and refcount.
    pub fn debug_info(&self) -> Result<Vec<DebugEntry>> {
        self.client()?.debug_info()
    }
}

impl Drop for BaseManager {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

impl std::fmt::Debug for BaseManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BaseManager")
            .field("address", &self.address())
            .finish_non_exhaustive()
    }
}
