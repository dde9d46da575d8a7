// Pages live under `/` with history routing (the gateway answers index.html for any path
// that is not a file, /api/… or a gRPC method), so a reload keeps the page. No page path
// starts with /api/ or /mlplane.v1. Each page is its own chunk.
import { lazy } from "react";
import { Navigate, type RouteObject } from "react-router";

import { selectRoles } from "../auth/authSlice";
import { PageLoader } from "../components/Loading";
import { useAppSelector } from "./hooks";
import { homeFor } from "./navigation";
import { NotFoundPage, RouteError } from "./NotFound";
import { RootLayout } from "./RootLayout";

const ModelsPage = lazy(() => import("../features/models/ModelsPage"));
const ModelPage = lazy(() => import("../features/models/ModelPage"));
const VersionPage = lazy(() => import("../features/models/VersionPage"));
const UploadPage = lazy(() => import("../features/upload/UploadPage"));
const ReviewQueuePage = lazy(() => import("../features/approvals/ReviewQueuePage"));
const AssetsPage = lazy(() => import("../features/data/AssetsPage"));
const AssetPage = lazy(() => import("../features/data/AssetPage"));
const ExportsPage = lazy(() => import("../features/data/ExportsPage"));
const ExportPage = lazy(() => import("../features/data/ExportPage"));

function Home() {
  const roles = useAppSelector(selectRoles);
  return <Navigate to={homeFor(roles)} replace />;
}

export const routes: RouteObject[] = [
  {
    path: "/",
    element: <RootLayout />,
    errorElement: <RouteError />,
    children: [
      { index: true, element: <Home /> },
      { path: "models", element: <ModelsPage /> },
      { path: "models/:modelId", element: <ModelPage /> },
      { path: "models/:modelId/versions/:version", element: <VersionPage /> },
      { path: "upload", element: <UploadPage /> },
      { path: "approvals", element: <ReviewQueuePage /> },
      { path: "data", element: <AssetsPage /> },
      { path: "data/:assetId", element: <AssetPage /> },
      { path: "exports", element: <ExportsPage /> },
      { path: "exports/:exportId", element: <ExportPage /> },
      { path: "auth/callback", element: <PageLoader label="Signing in" /> },
      { path: "*", element: <NotFoundPage /> },
    ],
  },
];
