/** The admin UI: a login form, then a navigation of pages by URL hash. Bundled by scripts/build-admin-ui.mjs. */
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import 'uplot/dist/uPlot.min.css';
import './style.css';
import { get, onSessionLost, post, setCsrf } from './api.js';
import { OverviewPage } from './overview.js';
import { ChannelsPage, ConnectionsPage, InboxPage, MessagesPage, NodesPage, PublishPage } from './pages.js';
import { ErrorLine, html } from './ui.js';

interface SessionInfo { csrf: string; via: string; node: string; expiresAt: number }

const PAGES = {
  overview: ['Overview', OverviewPage],
  nodes: ['Nodes', NodesPage],
  channels: ['Channels', ChannelsPage],
  connections: ['Connections', ConnectionsPage],
  publish: ['Publish', PublishPage],
  messages: ['Messages', MessagesPage],
  inbox: ['Inbox', InboxPage],
} as const;
type PageName = keyof typeof PAGES;

const pageOf = (): PageName => {
  const name = location.hash.replace(/^#\/?/, '');
  return name in PAGES ? (name as PageName) : 'overview';
};

function Login({ onLogin }: { onLogin: (s: SessionInfo) => void }) {
  const [credential, setCredential] = useState('');
  const [error, setError] = useState<unknown>();
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(undefined);
    try {
      const s = await post<SessionInfo>('/login', { credential });
      setCredential('');
      onLogin(s);
    } catch (err) { setError(err); }
  };
  return html`<main class="login"><form onSubmit=${submit} class="stack">
    <h1>Herald admin</h1>
    <label>Password or admin API key <input type="password" data-testid="credential" autocomplete="current-password" required value=${credential} onInput=${(e: Event) => setCredential((e.target as HTMLInputElement).value)} /></label>
    <button type="submit" data-testid="login">Log in</button>
    <${ErrorLine} error=${error} />
  </form></main>`;
}

function App() {
  const [session, setSession] = useState<SessionInfo | null | undefined>(undefined);
  const [page, setPage] = useState<PageName>(pageOf());
  useEffect(() => {
    get<SessionInfo>('/session').then(login, () => setSession(null));
    const onHash = () => setPage(pageOf());
    addEventListener('hashchange', onHash);
    // Any call answered admin_login_required (expired, logged out elsewhere) returns to the login form.
    onSessionLost(() => {
      setCsrf('');
      setSession(null);
    });
    return () => removeEventListener('hashchange', onHash);
  }, []);
  function login(s: SessionInfo) {
    setCsrf(s.csrf);
    setSession(s);
  }
  const logout = async () => {
    await post('/logout').catch(() => undefined);
    setCsrf('');
    setSession(null);
  };
  if (session === undefined) return html`<main class="login"><p class="muted">Loading…</p></main>`;
  if (session === null) return html`<${Login} onLogin=${login} />`;
  const Page = PAGES[page][1];
  return html`<div class="shell">
    <header>
      <h1>Herald</h1>
      <nav>${Object.entries(PAGES).map(([name, [label]]) => html`<a href=${`#/${name}`} class=${name === page ? 'active' : ''} data-testid=${`nav-${name}`}>${label}</a>`)}</nav>
      <span class="muted">node <code>${session.node}</code></span>
      <button data-testid="logout" onClick=${logout}>Log out</button>
    </header>
    <main><${Page} /></main>
  </div>`;
}

render(html`<${App} />`, document.getElementById('app')!);
