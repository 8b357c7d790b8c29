// Lit vertex colours for the sample's chunk meshes (each vertex carries its cube's colour).
// Built-in render pipeline; in a URP/HDRP project assign any material that shows vertex
// colours to CubeWalkSample's Chunk Material instead.
Shader "CubeWalk/VertexColorLit"
{
    SubShader
    {
        Tags { "RenderType" = "Opaque" }
        CGPROGRAM
        #pragma surface surf Lambert
        struct Input { float4 color : COLOR; };
        void surf(Input IN, inout SurfaceOutput o) { o.Albedo = IN.color.rgb; }
        ENDCG
    }
    Fallback "Diffuse"
}
