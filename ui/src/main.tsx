import { StrictMode, useEffect, useState } from "react";
import { createRoot } from "react-dom/client";
import { BrowserRouter, Link, Navigate, NavLink, Route, Routes, useNavigate } from "react-router-dom";
import { api, ApiError, setCsrf, setWorkspace, workspace } from "./api";
import { AdminPage } from "./pages/Admin";
import { ComparePage } from "./pages/Compare";
import { ExperimentsPage } from "./pages/Experiments";
import { LoginPage } from "./pages/Login";
import { ModelPage, ModelsPage } from "./pages/Models";
import { RunPage } from "./pages/Run";
import { RunsPage } from "./pages/Runs";
import { StandingContext } from "./roles";
import { Failed, Icon, Loading, messageOf } from "./ui";
import "./style.css";

interface Me { user: { name: string; admin?: boolean }; auth: boolean; signed_in: boolean; csrf_token?: string }

function Shell() {
  const [me, setMe] = useState<Me | null>(null);
  const [needsLogin, setNeedsLogin] = useState(false);
  const [spaces, setSpaces] = useState<{ name: string; role: string | null }[]>([]);
  const [current, setCurrent] = useState<string | null>(workspace());
  const [failed, setFailed] = useState<string | null>(null);
  const navigate = useNavigate();

  const load = async () => {
    try {
      const who = await api<Me>("GET", "/api/v1/auth/session");
      if (!who.signed_in) { setNeedsLogin(true); return; }
      if (who.csrf_token) setCsrf(who.csrf_token);
      setMe(who);
      setNeedsLogin(false);
      const list = await api<{ workspaces: { name: string; role: string | null }[] }>("GET", "/api/v1/workspaces");
      setSpaces(list.workspaces);
      const chosen = workspace();
      if (!chosen || !list.workspaces.some((w) => w.name === chosen)) {
        const first = list.workspaces.find((w) => w.name === "default") ?? list.workspaces[0];
        if (first) { setWorkspace(first.name); setCurrent(first.name); }
      }
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) setNeedsLogin(true);
      else setFailed(messageOf(error));
    }
  };
  useEffect(() => { void load(); }, []);

  if (needsLogin) return <LoginPage onSignedIn={() => void load()} />;
  if (failed) return <main className="page"><Failed error={failed} retry={() => { setFailed(null); void load(); }} /></main>;
  if (!me) return <main className="page"><Loading what="Cairn" /></main>;
  const signOut = async () => {
    await api("POST", "/api/v1/auth/logout");
    setCsrf(null);
    setNeedsLogin(true);
  };
  const switchTo = (name: string) => { setWorkspace(name); setCurrent(name); navigate("/"); };
  const standing = { role: spaces.find((w) => w.name === current)?.role ?? (me.auth ? null : "owner"),
                     admin: !!me.user.admin, auth: me.auth };
  return (
    <div>
      <header className="top">
        <Link to="/" className="brand"><Icon name="cairn" />Cairn</Link>
        <nav aria-label="main">
          <NavLink to="/" end>Experiments</NavLink>
          <NavLink to="/models">Models</NavLink>
          <NavLink to="/admin">Workspace</NavLink>
        </nav>
        <span className="spacer" />
        <label>
          Workspace{" "}
          <select aria-label="workspace" value={current ?? ""} onChange={(e) => switchTo(e.target.value)}>
            {spaces.map((w) => <option key={w.name} value={w.name}>{w.name}</option>)}
          </select>
        </label>
        <span className="user" data-testid="user">{me.user.name}</span>
        {me.auth && <button onClick={() => void signOut()}>Sign out</button>}
      </header>
      <StandingContext.Provider value={standing}>
      <main key={current ?? ""}>
        <Routes>
          <Route path="/" element={<ExperimentsPage />} />
          <Route path="/experiments/:experimentId" element={<RunsPage />} />
          <Route path="/runs/:runId" element={<RunPage />} />
          <Route path="/models" element={<ModelsPage />} />
          <Route path="/models/:modelName" element={<ModelPage />} />
          <Route path="/compare" element={<ComparePage />} />
          <Route path="/admin" element={<AdminPage />} />
          <Route path="*" element={<Navigate to="/" />} />
        </Routes>
      </main>
      </StandingContext.Provider>
    </div>
  );
}

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <BrowserRouter>
      <Shell />
    </BrowserRouter>
  </StrictMode>,
);
