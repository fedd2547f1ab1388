import { useState } from "react";
import { api, ApiError, setCsrf } from "../api";

export function LoginPage({ onSignedIn }: { onSignedIn: () => void }) {
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const submit = async (event: React.FormEvent) => {
    event.preventDefault();
    setError(null);
    try {
      const answer = await api<{ csrf_token: string }>("POST", "/api/v1/auth/login", { username, password });
      setCsrf(answer.csrf_token);
      onSignedIn();
    } catch (failure) {
      setError(failure instanceof ApiError ? failure.message : String(failure));
    }
  };
  return (
    <main><form className="login card" onSubmit={(e) => void submit(e)}>
      <h1>Sign in to Cairn</h1>
      <input aria-label="user name" placeholder="user name" value={username} autoComplete="username"
             onChange={(e) => setUsername(e.target.value)} />
      <input aria-label="password" placeholder="password" type="password" value={password}
             autoComplete="current-password" onChange={(e) => setPassword(e.target.value)} />
      <button className="primary" type="submit">Sign in</button>
      {error && <div className="error" role="alert">{error}</div>}
    </form></main>
  );
}
