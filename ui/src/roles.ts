// What the signed-in user may do in the current workspace, to hide or disable what the server would refuse.
import { createContext, useContext } from "react";

export const ROLE_RANK: Record<string, number> = { viewer: 1, editor: 2, maintainer: 3, owner: 4 };

export interface Standing { role: string | null; admin: boolean; auth?: boolean }

export function can(standing: Standing, needed: "viewer" | "editor" | "maintainer" | "owner"): boolean {
  return standing.admin || (standing.role !== null && (ROLE_RANK[standing.role] ?? 0) >= ROLE_RANK[needed]);
}

export const StandingContext = createContext<Standing>({ role: null, admin: false });

export function useCan(needed: "viewer" | "editor" | "maintainer" | "owner"): boolean {
  return can(useContext(StandingContext), needed);
}
